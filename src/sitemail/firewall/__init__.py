"""The emulated Cisco ASA between the sites: TCP relays with ESMTP inspection, and its CLI.

A firewall process (:mod:`.process`) relays each listener of its plan
(:mod:`.relay`), admitting each new connection by the access group of the
interface it enters (:mod:`.acl`), through the inspection engine
(:mod:`.inspection`, policy in :mod:`.esmtp_policy`), keeps its running
configuration (:mod:`.asa_config`, :mod:`.asa_model`), traces a connection
through it without sending one (:mod:`.packet_tracer`) and answers the ASA
command language on its console (:mod:`.asa_cli` and ``asa_*``);
:mod:`.console_cli` is ``sitemail asa``, which finds the firewall through the
lab's state file.
"""
