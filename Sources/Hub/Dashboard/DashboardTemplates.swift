import Mustache

/// The dashboard's Mustache templates, compiled into the hub so the binary is the whole
/// console (no template folder to install). `{{…}}` escapes `& < > " '`; the only unescaped
/// values (`{{{…}}}`) are a page's body rendered by these templates and charts drawn by
/// ``SVGChart``, which escapes what it draws.
enum DashboardTemplates {
    /// The templates, parsed once.
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in [("layout", Self.layout), ("login", Self.login), ("overview", Self.overview), ("cases", Self.cases), ("fleet", Self.fleet), ("health", Self.health), ("message", Self.message)] {
            try library.register(text, named: name)
        }
        return library
    }

    static let layout = """
        <!doctype html>
        <html lang="{{lang}}">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <meta name="csrf-token" content="{{csrf}}">
        <title>{{title}} · FeedbackMesh</title>
        <link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
        <link rel="stylesheet" href="/assets/dashboard.css">
        <script src="/assets/dashboard.js" defer></script>
        </head>
        <body data-refresh="{{refresh}}" data-done="{{t.saved}}">
        <a class="skip" href="#main">{{t.skip}}</a>
        <header>
        <nav aria-label="{{t.navigation}}"><ul>
        {{#nav}}<li><a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}</a></li>{{/nav}}
        </ul></nav>
        <div class="who">{{#who}}<span>{{who}}</span>{{/who}}
        <a href="{{langHref}}" lang="{{otherLang}}" hreflang="{{otherLang}}">{{otherLangName}}</a>
        {{#signedIn}}<button type="button" id="sign-out">{{t.signOut}}</button>{{/signedIn}}</div>
        </header>
        <p id="announce" class="result announce" role="status" aria-live="polite"></p>
        <main id="main" tabindex="-1">
        {{{body}}}
        </main>
        <footer>FeedbackMesh · {{t.updated}} <time id="updated">{{updated}}</time></footer>
        </body>
        </html>
        """

    static let login = """
        <section class="login">
        <h1>{{t.signIn}}</h1>
        <form id="login" method="post" action="/login" data-next="{{next}}" data-failed="{{t.signInFailed}}">
        <label for="token">{{t.token}}</label>
        <input id="token" type="password" autocomplete="off" required aria-describedby="token-help" spellcheck="false">
        <p id="token-help" class="muted">{{t.tokenHelp}}</p>
        <button type="submit" class="primary">{{t.signIn}}</button>
        <p class="result" role="alert"></p>
        </form>
        </section>
        """

    static let message = """
        <h1>{{heading}}</h1>
        <p>{{text}}</p>
        """

    static let overview = """
        <h1>{{t.overview}}</h1>
        <form class="filters" method="get" action="/">
        <label>{{t.period}}<select name="days">{{#periods}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/periods}}</select></label>
        <button type="submit">{{t.show}}</button>
        <p class="muted">{{periodText}}</p>
        </form>
        {{#error}}<p class="bad">{{error}}</p>{{/error}}
        <section aria-labelledby="rate-h"><h2 id="rate-h">{{t.ratingsPerHour}}</h2>{{{rateChart}}}</section>
        <section aria-labelledby="nps-h"><h2 id="nps-h">{{t.npsTrend}}</h2>{{{npsChart}}}</section>
        <section aria-labelledby="sites-h"><h2 id="sites-h">{{t.sites}}</h2>
        {{#hasSites}}<div class="table-wrap"><table>
        <thead><tr><th scope="col">{{t.site}}</th><th scope="col" class="num">{{t.responses}}</th><th scope="col" class="num">{{t.previous}}</th>
        <th scope="col">{{t.nps}}</th><th scope="col">{{t.previous}}</th><th scope="col">{{t.change}}</th><th scope="col">{{t.csat}}</th>
        <th scope="col" class="num">{{t.detractors}}</th><th scope="col" class="num">{{t.misuse}}</th></tr></thead>
        <tbody>
        {{#sites}}<tr><th scope="row">{{name}}</th><td class="num">{{responses}}</td><td class="num">{{previousResponses}}</td>
        <td>{{nps}}</td><td>{{previousNps}}</td><td>{{#change}}<span class="{{changeClass}}" title="{{changeTitle}}">{{change}}</span>{{/change}}</td>
        <td>{{csat}}</td><td class="num">{{detractors}}</td><td class="num">{{misuse}}</td></tr>
        {{/sites}}
        </tbody></table></div>{{/hasSites}}
        {{#cut}}<p class="muted">{{t.cut}}</p>{{/cut}}
        {{^sites}}<p>{{t.noRatings}}</p>{{/sites}}
        </section>
        """

    static let cases = """
        <h1>{{t.cases}}</h1>
        <form class="filters" method="get" action="/cases">
        <label>{{t.status}}<select name="status">{{#statusChoices}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/statusChoices}}</select></label>
        <label>{{t.site}}<input name="site" value="{{site}}" maxlength="1024"></label>
        <label>{{t.owner}}<input name="owner" value="{{owner}}" maxlength="200"></label>
        <label>{{t.stuckFor}}<input name="stuckFor" type="number" min="1" max="8760" value="{{stuckFor}}"></label>
        <label class="check"><input type="checkbox" name="overdue" value="true"{{#overdueOnly}} checked{{/overdueOnly}}>{{t.overdueOnly}}</label>
        <button type="submit">{{t.filter}}</button>
        </form>
        <p class="muted">{{count}} {{t.casesShown}}{{#cut}} · {{t.cut}}{{/cut}}{{^canAct}} · {{t.readOnly}}{{/canAct}}</p>
        {{#error}}<p class="bad">{{error}}</p>{{/error}}
        <section aria-label="{{t.cases}}">
        {{#cases}}<article class="case" id="case-{{id}}" data-status="{{status}}">
        <h2>{{summary}}</h2>
        <dl>
        <div><dt>{{t.status}}</dt><dd><span class="badge {{statusClass}}">{{statusLabel}}</span>{{#overdue}} <span class="badge bad">{{t.overdue}}</span>{{/overdue}}{{#stuck}} <span class="badge warn">{{t.stuck}}</span>{{/stuck}}</dd></div>
        <div><dt>{{t.site}}</dt><dd>{{site}}</dd></div>
        <div><dt>{{t.subject}}</dt><dd>{{subject}}</dd></div>
        <div><dt>{{t.owner}}</dt><dd>{{owner}}</dd></div>
        <div><dt>{{t.raised}}</dt><dd>{{raised}}</dd></div>
        <div><dt>{{t.due}}</dt><dd>{{due}}</dd></div>
        <div><dt>{{t.lastChange}}</dt><dd>{{changed}}</dd></div>
        </dl>
        {{#note}}<p class="muted">{{note}}</p>{{/note}}
        {{#hasActions}}<form data-case="{{id}}" aria-label="{{t.actions}}: {{summary}}">
        <label>{{t.owner}}<input name="owner" value="{{ownerValue}}" maxlength="200"></label>
        <button type="button" data-action="assign">{{t.assign}}</button>
        <label>{{t.note}}<textarea name="note" maxlength="4000"></textarea></label>
        {{#canComplete}}<label class="check"><input type="checkbox" name="customerReached">{{t.customerReached}}</label>{{/canComplete}}
        {{#actions}}<button type="button" data-action="{{name}}">{{label}}</button>{{/actions}}
        <p class="result" role="status" aria-live="polite"></p>
        </form>{{/hasActions}}
        </article>
        {{/cases}}
        {{^cases}}<p>{{t.noCases}}</p>{{/cases}}
        </section>
        """

    static let fleet = """
        <h1>{{t.fleet}}</h1>
        <p class="muted">{{count}} {{t.nodesShown}}{{#cut}} · {{t.cut}}{{/cut}}</p>
        <section aria-label="{{t.fleet}}">
        {{#hasNodes}}<div class="table-wrap"><table>
        <thead><tr><th scope="col">{{t.node}}</th><th scope="col">{{t.status}}</th><th scope="col">{{t.site}}</th><th scope="col">{{t.role}}</th>
        <th scope="col">{{t.version}}</th><th scope="col">{{t.lastSeen}}</th><th scope="col" class="num">{{t.backlog}}</th>
        <th scope="col">{{t.oldestPending}}</th><th scope="col">{{t.upstream}}</th><th scope="col">{{t.sourceErrors}}</th></tr></thead>
        <tbody>
        {{#nodes}}<tr><th scope="row"><abbr title="{{id}}">{{shortId}}</abbr></th><td><span class="badge {{stateClass}}">{{state}}</span></td><td>{{sites}}</td>
        <td>{{role}}</td><td>{{version}}</td><td>{{lastSeen}}</td><td class="num">{{backlog}}</td><td>{{oldest}}</td><td>{{upstream}}</td><td>{{errors}}</td></tr>
        {{/nodes}}
        </tbody></table></div>{{/hasNodes}}
        {{^nodes}}<p>{{t.noNodes}}</p>{{/nodes}}
        </section>
        """

    static let health = """
        <h1>{{t.health}}</h1>
        <p class="muted">{{t.thisHub}}{{^ready}} {{t.sampling}}{{/ready}}</p>
        <div class="cards">
        <div class="card"><div class="muted">{{t.recordsPerSecond}}</div><div class="figure">{{rate}}</div></div>
        <div class="card"><div class="muted">{{t.commitLatency}}</div><div class="figure">{{commit}}</div></div>
        <div class="card"><div class="muted">{{t.connections}}</div><div class="figure">{{connections}}</div><div class="muted">{{t.handshakes}}: {{handshakes}}</div></div>
        <div class="card"><div class="muted">{{t.storeUp}}</div><div class="figure {{storeClass}}">{{store}}</div></div>
        <div class="card"><div class="muted">{{t.nodesSilent}}</div><div class="figure">{{silent}}</div></div>
        </div>
        <section aria-labelledby="ingest-h"><h2 id="ingest-h">{{t.ingestChart}}</h2>{{{ingestChart}}}</section>
        {{#tables}}<section aria-labelledby="{{id}}-h"><h2 id="{{id}}-h">{{title}}</h2>
        <div class="table-wrap"><table><thead><tr><th scope="col">{{column}}</th><th scope="col" class="num">{{t.lastMinute}}</th><th scope="col" class="num">{{t.sinceStart}}</th></tr></thead>
        <tbody>{{#rows}}<tr><th scope="row">{{name}}</th><td class="num">{{recent}}</td><td class="num">{{total}}</td></tr>{{/rows}}</tbody></table></div>
        </section>{{/tables}}
        """
}
