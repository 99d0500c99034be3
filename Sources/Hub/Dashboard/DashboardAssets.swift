/// The dashboard's stylesheet and script, served by the hub itself (`/assets/…`): no CDN,
/// no font or image from elsewhere. The pages' Content-Security-Policy allows only these.
enum DashboardAssets {
    static let stylesheet = """
        :root { --ink: #1d2430; --muted: #5b6575; --line: #d5dae2; --bg: #f6f7f9; --card: #fff; --accent: #1f5fbf;
          --bad: #b3261e; --warn: #8a5a00; --good: #1b7a3a; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
        * { box-sizing: border-box; }
        body { margin: 0; color: var(--ink); background: var(--bg); line-height: 1.4; }
        a { color: var(--accent); }
        :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
        .skip { position: absolute; left: -999px; top: 0; background: var(--card); padding: .5rem; }
        .skip:focus { left: .5rem; }
        header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; justify-content: space-between;
          padding: .5rem 1rem; background: var(--card); border-bottom: 1px solid var(--line); }
        header ul { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: 0; padding: 0; }
        header a[aria-current="page"] { font-weight: 700; color: var(--ink); text-decoration: none; border-bottom: 3px solid var(--accent); }
        .who { color: var(--muted); font-size: .9rem; display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
        main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
        main:focus { outline: none; }
        h1 { font-size: 1.4rem; margin: .25rem 0 1rem; }
        h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
        section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin-bottom: 1rem; }
        .chart { width: 100%; height: auto; max-height: 14rem; }
        .chart .bar { fill: var(--accent); }
        .chart .line { fill: none; stroke: var(--accent); stroke-width: 2; }
        .chart .band { fill: var(--accent); fill-opacity: .18; }
        .chart .dot { fill: var(--accent); }
        .chart .whisker { stroke: var(--accent); stroke-opacity: .35; stroke-width: 8; }
        .chart .grid { stroke: var(--line); }
        .chart .axis { fill: var(--muted); font-size: 11px; }
        .table-wrap { overflow-x: auto; }
        .chart-table { margin: .25rem 0 .5rem; }
        .chart-table summary { cursor: pointer; }
        .chart-table table { max-width: 30rem; }
        table { border-collapse: collapse; width: 100%; font-size: .95rem; }
        th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .muted { color: var(--muted); }
        .badge { display: inline-block; padding: 0 .4rem; border-radius: 3px; font-size: .85rem; border: 1px solid currentColor; }
        .bad { color: var(--bad); } .warn { color: var(--warn); } .good { color: var(--good); }
        form.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; }
        label { display: inline-flex; flex-direction: column; font-size: .9rem; gap: .15rem; }
        label.check { flex-direction: row; align-items: center; gap: .35rem; }
        input, select, textarea, button { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 4px; }
        button { background: var(--card); cursor: pointer; min-height: 2.25rem; }
        button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
        .case { border-top: 1px solid var(--line); padding: .75rem 0; }
        .case h2 { margin: 0 0 .25rem; font-size: 1rem; }
        .case dl { display: flex; flex-wrap: wrap; gap: .25rem 1.25rem; margin: .25rem 0; font-size: .9rem; }
        .case dt { color: var(--muted); } .case dd { margin: 0; }
        .case form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin-top: .5rem; }
        .case textarea { min-width: 16rem; min-height: 2.25rem; }
        .result { min-height: 1.2rem; margin: .25rem 0 0; font-size: .9rem; }
        .announce { max-width: 80rem; margin: .5rem auto 0; padding: 0 1rem; color: var(--good); }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(12rem, 1fr)); gap: .75rem; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .75rem; }
        .card .figure { font-size: 1.5rem; font-weight: 600; }
        footer { padding: 1rem; color: var(--muted); font-size: .85rem; text-align: center; }
        .login { max-width: 28rem; margin: 4rem auto; }
        .login form { display: flex; flex-direction: column; gap: .75rem; }
        @media (max-width: 40rem) { main { padding: .5rem; } section { padding: .5rem; } th, td { padding: .3rem; } }
        """

    /// The tab's icon: a speech bubble with a tick, so the browser asks for no `/favicon.ico`.
    static let icon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="2" y="3" width="28" height="21" rx="5" fill="#1f5fbf"/>\
        <path d="M9 24l0 6 7-6z" fill="#1f5fbf"/><path d="M9 13l5 5 9-9" stroke="#fff" stroke-width="3" fill="none"/></svg>
        """

    /// Live refresh (`<body data-refresh="S">`: the page's `<main>` is fetched again every S
    /// seconds unless a field in it is being edited), case actions (a form's buttons post
    /// to `/v1/alerts/ID/ACTION` with the CSRF token from `<meta name="csrf-token">`),
    /// sign-in (the token is posted once to `/v1/session` and forgotten) and sign-out.
    static let script = """
        "use strict";
        (function () {
          const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
          const main = () => document.getElementById("main");

          let inFlight = false;
          // force: after the reader's own action, which was made from a focused button.
          async function refresh(force) {
            if (inFlight) return;
            inFlight = true;
            try {
              const response = await fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
              if (response.redirected || response.status === 401) { location.assign("/login"); return; }
              if (!response.ok) return;
              const page = new DOMParser().parseFromString(await response.text(), "text/html");
              const fresh = page.getElementById("main");
              // Checked again: the reader may have started typing while the page was fetched.
              if (fresh && (force || !editing())) {
                // A chart's table the reader opened stays open.
                const open = [...main().querySelectorAll("details[id][open]")].map((details) => details.id);
                main().replaceChildren(...fresh.childNodes);
                for (const id of open) { const details = document.getElementById(id); if (details) details.open = true; }
              }
              const stamp = page.getElementById("updated");
              if (stamp) document.getElementById("updated").textContent = stamp.textContent;
            } finally {
              inFlight = false;
            }
          }

          // Something in <main> has the focus (a field, a button, a link) or a field holds
          // unsent text: a refresh now would take it from under the reader.
          function editing() {
            const active = document.activeElement;
            if (active && active !== main() && main().contains(active)) return true;
            return [...main().querySelectorAll("textarea, input")].some((field) =>
              field.type === "checkbox" ? field.checked !== field.defaultChecked : field.value !== field.defaultValue);
          }

          const seconds = Number(document.body.dataset.refresh || 0);
          if (seconds > 0) {
            setInterval(() => { if (document.visibilityState === "visible" && !editing()) refresh(false).catch(() => {}); }, seconds * 1000);
          }

          // Enter in a case's owner field assigns; a case form is never sent as a page request.
          document.addEventListener("submit", (event) => {
            const form = event.target.closest("form[data-case]");
            if (!form) return;
            event.preventDefault();
            if (document.activeElement && document.activeElement.name === "owner") form.querySelector("button[data-action=assign]").click();
          });

          document.addEventListener("click", async (event) => {
            const button = event.target.closest("button[data-action]");
            if (!button) return;
            event.preventDefault();
            const form = button.closest("form");
            const result = form.querySelector(".result");
            const action = button.dataset.action;
            const body = {};
            const note = form.elements.note && form.elements.note.value.trim();
            if (note) body.note = note;
            if (action === "assign") body.owner = form.elements.owner.value.trim();
            if (action === "complete") body.customerReached = form.elements.customerReached.checked;
            button.disabled = true;
            try {
              const response = await fetch("/v1/alerts/" + encodeURIComponent(form.dataset.case) + "/" + action, {
                method: "POST", credentials: "same-origin",
                headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() }, body: JSON.stringify(body),
              });
              if (response.ok) {
                document.getElementById("announce").textContent = document.body.dataset.done + ": " + button.textContent;
                button.blur();
                await refresh(true);
                main().focus();
                return;
              }
              const answer = await response.json().catch(() => ({}));
              result.textContent = (answer.error && answer.error.message) || ("HTTP " + response.status);
            } catch (error) {
              result.textContent = String(error);
            } finally {
              button.disabled = false;
            }
          });

          const signOut = document.getElementById("sign-out");
          if (signOut) signOut.addEventListener("click", async () => {
            const response = await fetch("/v1/session", { method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": csrf() } })
              .catch(() => null);
            if (!response || !response.ok) {
              document.getElementById("announce").textContent = "HTTP " + (response ? response.status : "—");
              return;
            }
            location.assign("/login");
          });

          const login = document.getElementById("login");
          if (login) login.addEventListener("submit", async (event) => {
            event.preventDefault();
            const field = login.elements.token;
            const result = login.querySelector(".result");
            const response = await fetch("/v1/session", {
              method: "POST", credentials: "same-origin", headers: { "Authorization": "Bearer " + field.value.trim() },
            }).catch(() => null);
            field.value = "";
            if (response && response.ok) { location.assign(login.dataset.next || "/"); return; }
            const answer = response ? await response.json().catch(() => ({})) : {};
            result.textContent = login.dataset.failed + ": " + ((answer.error && answer.error.message) || (response ? "HTTP " + response.status : "network"));
            field.focus();
          });
        })();
        """
}
