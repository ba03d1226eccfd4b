"""The troubleshooter: what is wrong with mail flow, and why (``sitemail troubleshoot``).

It gathers facts from a running lab (:mod:`.live`: the directory, the admin
APIs, the firewalls' consoles, SMTP probes of each path with :mod:`.probe`) or
from log folders alone (:mod:`.offline`, reading them with :mod:`.logs` and
:mod:`.logscan`), runs its rules over them (:mod:`.rules` and ``rules_*``,
pure functions) and reports the findings as text or HTML (:mod:`.report_text`,
:mod:`.report_html`); :mod:`.cli` is ``sitemail probe|troubleshoot|routing``.
"""
