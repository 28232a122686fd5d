/**
 * The placeholder page (the real pages come later): static HTML and one script, no build step,
 * every value rendered as text (`textContent`), never as markup.
 */

/** The page, served at `/` once the session cookie is set. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Keel observer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
<h1>Keel observer</h1>
<p id="status">connecting</p>
<pre id="overview"></pre>
<table id="processes"><thead><tr><th>pid</th><th>name</th><th>status</th><th>mailbox</th><th>handled</th></tr></thead><tbody></tbody></table>
<script src="/app.js"></script>
</body>
</html>
`;

/** The page's script: an event stream, rendered with `textContent` only. */
export const APP_JS = `'use strict';
(function () {
  var frames = 0;
  var status = document.getElementById('status');
  var overview = document.getElementById('overview');
  var body = document.querySelector('#processes tbody');
  function cell(row, text) { var td = document.createElement('td'); td.textContent = text == null ? '' : String(text); row.appendChild(td); }
  function render(rows) {
    body.textContent = '';
    rows.forEach(function (p) { var tr = document.createElement('tr'); cell(tr, p.pid); cell(tr, p.name); cell(tr, p.status); cell(tr, p.mailbox); cell(tr, p.handled); body.appendChild(tr); });
  }
  var source = new EventSource('/api/events');
  source.addEventListener('snapshot', function (e) {
    frames++; document.body.dataset.frames = String(frames);
    var s = JSON.parse(e.data); overview.textContent = JSON.stringify(s.overview, null, 2); render(s.processes.processes || []);
    status.textContent = 'live';
  });
  source.addEventListener('overview', function (e) {
    frames++; document.body.dataset.frames = String(frames);
    overview.textContent = JSON.stringify(JSON.parse(e.data), null, 2);
  });
  source.onerror = function () { status.textContent = 'reconnecting'; };
})();
`;

/** The Content-Security-Policy of every answer: nothing inline, nothing from elsewhere. */
export const CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
