"""The console's HTML pages: sign-in, Topology and the Queue Viewer.

Plain HTML, every value escaped; the page script (``static/console.js``)
fills and refreshes the tables from the JSON routes, and the pages are usable
by keyboard in document order: the skip link, the navigation, then the
page's own controls.  Every form and button has a visible label or an
``aria-label``; live regions announce what an action did.
"""

from __future__ import annotations

from html import escape

from .auth import ConsoleSession


def layout(title: str, body: str, session: ConsoleSession, current: str) -> str:
    def nav(path: str, label: str) -> str:
        mark = ' aria-current="page"' if path == current else ""
        return f'<li><a href="{path}"{mark}>{label}</a></li>'

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} - sitemail console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/console.css">
<script src="/static/console.js" defer></script>
</head>
<body data-csrf="{escape(session.csrf)}">
<a class="skip" href="#main">Skip to content</a>
<header>
<span class="brand">sitemail console</span>
<nav aria-label="Console"><ul>{nav("/", "Topology")}{nav("/queues", "Queue Viewer")}
{nav("/tracking", "Message tracking")}{nav("/conversations", "SMTP conversations")}
{nav("/troubleshoot", "Troubleshooter")}</ul></nav>
<form method="post" action="/signout" class="signout">
<input type="hidden" name="csrf" value="{escape(session.csrf)}">
<span>Signed in as {escape(session.alias)}</span>
<button type="submit">Sign out</button>
</form>
</header>
<main id="main" tabindex="-1">
<h1>{escape(title)}</h1>
{body}
</main>
</body>
</html>
"""


def topology_page(session: ConsoleSession, picture: str, routing: str) -> str:
    body = f"""<p class="hint">Live: hosts' state, the hubs' queues and the firewalls' inspection
refresh every few seconds. Select a server or a firewall (click, or Tab to it and press Enter)
for its details.</p>
<p id="updated"></p>
<p id="status" role="status" aria-live="polite"></p>
<div class="topology">
<figure>{picture}<figcaption>Sites, site links with their costs, servers with their roles and
versions, firewalls and the Internet host.</figcaption></figure>
<section id="details" aria-live="polite" aria-labelledby="details-title">
<h2 id="details-title">Details</h2>
<p>Select a server or a firewall in the picture.</p>
</section>
</div>
<details><summary>Routing (what <code>sitemail routing --svg</code> draws)</summary>
<figure class="routing">{routing}</figure></details>
"""
    return layout("Topology", body, session, "/")


def queues_page(session: ConsoleSession) -> str:
    body = """<p class="hint">The queues of every Hub Transport server, as Get-Queue lists them,
refreshed every few seconds. Select a queue for its messages.</p>
<p id="updated"></p>
<p id="status" role="status" aria-live="polite"></p>
<div id="queue-actions" role="toolbar" aria-label="Queue actions">
<button type="button" data-queue-action="retry" disabled>Retry</button>
<button type="button" data-queue-action="suspend" disabled>Suspend</button>
<button type="button" data-queue-action="resume" disabled>Resume</button>
</div>
<table id="queues" aria-label="Queues">
<caption>Queues</caption>
<thead><tr><th scope="col">Select</th><th scope="col">Identity</th>
<th scope="col">DeliveryType</th><th scope="col">Status</th><th scope="col">MessageCount</th>
<th scope="col">NextHopDomain</th><th scope="col">LastError</th></tr></thead>
<tbody></tbody>
</table>
<section aria-labelledby="messages-title">
<h2 id="messages-title">Messages in <span id="messages-queue">no queue selected</span></h2>
<div id="message-actions" role="toolbar" aria-label="Message actions">
<button type="button" data-message-action="suspend" disabled>Suspend</button>
<button type="button" data-message-action="resume" disabled>Resume</button>
<button type="button" data-message-action="remove" disabled>Remove</button>
</div>
<table id="messages" aria-label="Messages">
<thead><tr><th scope="col">Select</th><th scope="col">Identity</th>
<th scope="col">FromAddress</th><th scope="col">Status</th><th scope="col">Subject</th>
<th scope="col">LastError</th></tr></thead>
<tbody></tbody>
</table>
</section>
<section aria-labelledby="output-title">
<h2 id="output-title">Last command</h2>
<pre id="output" aria-live="polite"></pre>
</section>
"""
    return layout("Queue Viewer", body, session, "/queues")


def troubleshoot_page(session: ConsoleSession) -> str:
    body = """<p class="hint">Runs the mail-flow troubleshooter on the running lab, as
<code>sitemail troubleshoot</code> does: the directory, every hub's queues, the firewalls'
inspection, a probe of SMTP between the sites, then the protocol and tracking logs. It runs in
the background; this page shows how far it got, then its report.</p>
<div id="troubleshoot-controls" role="group" aria-label="Troubleshooter">
<label><input type="checkbox" id="probes" checked> Probe SMTP between the sites</label>
<button type="button" id="run-troubleshooter">Run the troubleshooter</button>
</div>
<p id="status" role="status" aria-live="polite"></p>
<label for="troubleshoot-progress">Progress</label>
<progress id="troubleshoot-progress" max="5" value="0"></progress>
<span id="troubleshoot-elapsed"></span>
<ol id="troubleshoot-steps" aria-label="Steps done"></ol>
<section id="report" aria-labelledby="report-title">
<h2 id="report-title">Report</h2>
<p>No report yet.</p>
</section>
"""
    return layout("Troubleshooter", body, session, "/troubleshoot")


#: The sign-in page's own styles: it is the one page served before sign-in, so the
#: console's stylesheet (behind sign-in like everything else) is not available to it.
_SIGNIN_STYLE = """
body{font:15px sans-serif;background:#eef2f7;color:#1d2330;margin:0}
main{max-width:380px;margin:80px auto;background:#fff;padding:28px;border-radius:10px;
box-shadow:0 2px 10px #0002}
label{display:block;margin:14px 0 4px;font-weight:bold}
input{width:100%;box-sizing:border-box;padding:8px;font-size:15px}
button{margin-top:18px;padding:8px 18px;font-size:15px}
:focus{outline:3px solid #1f6fd1;outline-offset:2px}
.error{color:#a61b1b}
"""


def signin_page(
    csrf: str, nonce: str, *, next_path: str, error: str | None = None, name: str = ""
) -> str:
    problem = (
        f'<p class="error" id="signin-error" role="alert">{escape(error)}</p>' if error else ""
    )
    described = ' aria-describedby="signin-error"' if error else ""
    # After a refusal the name is kept, so the cursor goes where the next keystroke belongs.
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sign in - sitemail console</title>
<link rel="icon" href="data:,">
<style nonce="{escape(nonce)}">{_SIGNIN_STYLE}</style>
</head>
<body>
<main>
<h1>sitemail console</h1>
<p>Sign in with an organization administrator's account.</p>
{problem}
<form method="post" action="/signin">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<input type="hidden" name="next" value="{escape(next_path)}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required maxlength="256"
 value="{escape(name)}"{"" if name else " autofocus"}{described}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password"
 required maxlength="256"{" autofocus" if name else ""}{described}>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"""
