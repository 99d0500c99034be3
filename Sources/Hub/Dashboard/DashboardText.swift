import Foundation

/// The dashboard's words in English and Russian. Templates read them as `{{t.key}}`; the
/// two tables have the same keys (a test checks it), so no page shows a key instead of a word.
enum DashboardText {
    /// The languages the pages speak.
    enum Language: String, Sendable, CaseIterable {
        case en, ru

        /// The language a request asks for: `?lang=`, then the `fm_lang` cookie, then the
        /// first of `Accept-Language` this dashboard speaks; English otherwise.
        static func chosen(query: String?, cookie: String?, acceptLanguage: String?) -> Language {
            if let query, let language = Language(rawValue: query) { return language }
            if let cookie, let language = Language(rawValue: cookie) { return language }
            for range in (acceptLanguage ?? "").split(separator: ",") {
                let tag = range.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
                if let language = Language(rawValue: String(tag.prefix(2))), tag.count == 2 || tag.dropFirst(2).hasPrefix("-") {
                    return language
                }
            }
            return .en
        }

        var other: Language { self == .en ? .ru : .en }
        /// The language's own name, for the switch.
        var name: String { self == .en ? "English" : "Русский" }
        var table: [String: String] { self == .en ? DashboardText.english : DashboardText.russian }
    }

    static let english: [String: String] = [
        "skip": "Skip to content", "navigation": "Pages", "overview": "Overview", "cases": "Cases", "fleet": "Fleet", "health": "Hub health",
        "signIn": "Sign in", "signOut": "Sign out", "token": "API token", "tokenHelp": "Paste the token you were given (fma_…). It is exchanged for a session cookie and not kept by the page.",
        "signInFailed": "Sign-in failed", "updated": "Updated", "period": "Period", "days1": "24 hours", "days7": "7 days", "days30": "30 days", "days90": "90 days",
        "asTable": "The figures as a table", "hour": "Hour", "day": "Day", "time": "Time", "interval95": "95 % interval", "perSecond": "Ratings per second",
        "show": "Show", "ratingsPerHour": "Ratings per hour, last 48 hours", "ratingsPerHourDesc": "Bars: ratings stored per hour for your sites.",
        "npsTrend": "NPS per day with its 95 % interval", "npsTrendDesc": "Line: NPS per day; band: its 95 % interval (adjusted Wald).",
        "sites": "Sites, this period against the last", "site": "Site", "responses": "Ratings", "previous": "Before", "nps": "NPS (95 % interval)",
        "change": "Change", "beyond": "beyond the intervals", "within": "within the intervals", "csat": "CSAT", "detractors": "Detractors",
        "misuse": "Misuse (left out)", "total": "All sites", "noRatings": "No ratings in this period.",
        "status": "Status", "statusOpenOnly": "Not closed", "statusAll": "All", "open": "Open", "inProgress": "In progress", "waiting": "Waiting",
        "completed": "Completed", "cancelled": "Cancelled", "owner": "Owner", "overdue": "Overdue", "overdueOnly": "Overdue only",
        "stuckFor": "Stuck after (hours)", "stuck": "Stuck", "filter": "Filter", "raised": "Raised", "due": "Due", "lastChange": "Last change",
        "subject": "Subject", "summary": "Case", "noCases": "No case matches.", "actions": "Actions", "note": "Note",
        "customerReached": "Customer reached", "assign": "Assign", "start": "Start", "wait": "Wait", "complete": "Complete", "cancel": "Cancel",
        "readOnly": "Your token may read cases, not change them.", "casesShown": "cases shown, overdue and stuck first",
        "node": "Node", "role": "Role", "version": "Version", "lastSeen": "Last seen", "upstream": "Upstream", "backlog": "Backlog",
        "oldestPending": "Oldest pending", "sourceErrors": "Source errors", "silent": "Silent", "active": "Active", "never": "Never seen",
        "revoked": "Revoked", "noNodes": "No node is registered for your sites.", "nodesShown": "nodes, silent first",
        "ingest": "Ingest", "recordsPerSecond": "Ratings stored per second (last minute)", "ingestChart": "Ratings stored per second, last 10 minutes",
        "ingestChartDesc": "Bars: ratings this hub stored per second, per 10-second sample.", "commitLatency": "Commit latency (last minute)",
        "connections": "Connections", "handshakes": "Handshakes", "rejects": "Rejects by code", "code": "Code", "lastMinute": "Last minute",
        "sinceStart": "Since start", "deliveries": "Webhook deliveries", "outcome": "Outcome", "storeUp": "Store reachable", "yes": "yes", "no": "no",
        "nodesSilent": "Nodes silent", "authRefusals": "Refused API calls", "reason": "Reason", "sampling": "Figures appear after the first samples (every 10 s).",
        "thisHub": "This hub's own figures.", "saved": "Saved", "cut": "only the first ones are shown; filter to see the rest", "ago": "ago", "in": "in", "forbidden": "Your token may not see this page.",
    ]

    static let russian: [String: String] = [
        "skip": "К содержимому", "navigation": "Страницы", "overview": "Обзор", "cases": "Обращения", "fleet": "Узлы", "health": "Состояние хаба",
        "signIn": "Войти", "signOut": "Выйти", "token": "API-токен", "tokenHelp": "Вставьте выданный токен (fma_…). Он обменивается на cookie сессии и не хранится страницей.",
        "signInFailed": "Не удалось войти", "updated": "Обновлено", "period": "Период", "days1": "24 часа", "days7": "7 дней", "days30": "30 дней", "days90": "90 дней",
        "asTable": "Цифры таблицей", "hour": "Час", "day": "День", "time": "Время", "interval95": "95 % интервал", "perSecond": "Оценок в секунду",
        "show": "Показать", "ratingsPerHour": "Оценки по часам, последние 48 часов", "ratingsPerHourDesc": "Столбцы: оценки за каждый час по вашим точкам.",
        "npsTrend": "NPS по дням с 95 % интервалом", "npsTrendDesc": "Линия: NPS за день; полоса: его 95 % интервал (скорректированный Вальд).",
        "sites": "Точки: этот период и прошлый", "site": "Точка", "responses": "Оценки", "previous": "Ранее", "nps": "NPS (95 % интервал)",
        "change": "Изменение", "beyond": "за пределами интервалов", "within": "в пределах интервалов", "csat": "CSAT", "detractors": "Критики",
        "misuse": "Злоупотребления (не учтены)", "total": "Все точки", "noRatings": "За этот период оценок нет.",
        "status": "Статус", "statusOpenOnly": "Незакрытые", "statusAll": "Все", "open": "Открыто", "inProgress": "В работе", "waiting": "Ожидание",
        "completed": "Завершено", "cancelled": "Отменено", "owner": "Ответственный", "overdue": "Просрочено", "overdueOnly": "Только просроченные",
        "stuckFor": "Без движения (часов)", "stuck": "Без движения", "filter": "Отобрать", "raised": "Создано", "due": "Срок", "lastChange": "Изменено",
        "subject": "Объект", "summary": "Обращение", "noCases": "Подходящих обращений нет.", "actions": "Действия", "note": "Заметка",
        "customerReached": "Клиент на связи", "assign": "Назначить", "start": "Взять в работу", "wait": "Ждать", "complete": "Завершить", "cancel": "Отменить",
        "readOnly": "Ваш токен позволяет читать обращения, но не менять их.", "casesShown": "обращений, сначала просроченные и без движения",
        "node": "Узел", "role": "Роль", "version": "Версия", "lastSeen": "Был на связи", "upstream": "Вышестоящий", "backlog": "Очередь",
        "oldestPending": "Самая старая в очереди", "sourceErrors": "Ошибки источников", "silent": "Молчит", "active": "Активен", "never": "Не появлялся",
        "revoked": "Отозван", "noNodes": "Для ваших точек узлов нет.", "nodesShown": "узлов, сначала молчащие",
        "ingest": "Приём", "recordsPerSecond": "Оценок в секунду (последняя минута)", "ingestChart": "Оценок в секунду, последние 10 минут",
        "ingestChartDesc": "Столбцы: оценки, сохранённые этим хабом, в секунду, по 10-секундным замерам.", "commitLatency": "Задержка фиксации (последняя минута)",
        "connections": "Соединения", "handshakes": "Рукопожатия", "rejects": "Отказы по кодам", "code": "Код", "lastMinute": "За минуту",
        "sinceStart": "С запуска", "deliveries": "Доставка вебхуков", "outcome": "Итог", "storeUp": "Хранилище доступно", "yes": "да", "no": "нет",
        "nodesSilent": "Молчащие узлы", "authRefusals": "Отклонённые вызовы API", "reason": "Причина", "sampling": "Показатели появятся после первых замеров (каждые 10 с).",
        "thisHub": "Показатели этого хаба.", "saved": "Сохранено", "cut": "показаны только первые; уточните отбор, чтобы увидеть остальные", "ago": "назад", "in": "через", "forbidden": "Вашему токену эта страница недоступна.",
    ]
}
