/// The popup widget the HTTP intake serves at `GET /v1/widget.js`: a self-contained script a
/// product page includes to ask one question (NPS 0–10, CSAT, CES or smiley) with an
/// optional comment, and post the answer with a survey key. It loads nothing from
/// elsewhere, lives in its own shadow root, never throws into the page, is keyboard-usable
/// with ARIA labels, speaks English and Russian, and remembers in the browser for
/// `data-days` days that the customer answered or dismissed it. docs/WIDGET.md.
enum PopupWidget {
    /// The script's text.
    static let script = #"""
/* FeedbackMesh popup widget: asks one question, posts the answer to the agent that served
   this script. Self-contained: loads nothing, sets no cookie, touches nothing of the page
   outside its own element (a shadow root). Errors stay inside it. docs/WIDGET.md */
(function () {
  'use strict';
  try {
    var script = document.currentScript;
    if (!script || window.__feedbackMeshWidget) { return; }
    window.__feedbackMeshWidget = true;
    var data = script.dataset || {};
    var key = data.key || '';
    if (!key) { return; }
    // Beside the script, so an agent served under a path prefix works as well.
    var endpoint = new URL('feedback', script.src).href;
    var scale = ({ nps: 1, csat: 1, ces: 1, smiley: 1 })[data.scale] ? data.scale : 'nps';
    var survey = data.survey || '';
    var customer = data.customer || '';
    var days = Math.max(0, Math.min(3650, parseInt(data.days || '90', 10) || 0));
    var delay = Math.max(0, Math.min(600000, parseInt(data.delay || '0', 10) || 0));
    var lang = (data.lang || document.documentElement.lang || navigator.language || 'en').toLowerCase().indexOf('ru') === 0 ? 'ru' : 'en';
    var texts = {
      en: {
        nps: ['How likely are you to recommend us to a friend or colleague?', 'Not at all likely', 'Extremely likely'],
        csat: ['How satisfied are you with us?', 'Very dissatisfied', 'Very satisfied'],
        ces: ['How easy was it to get what you needed?', 'Very difficult', 'Very easy'],
        smiley: ['How was your experience?', 'Bad', 'Great'],
        faces: ['Bad', 'So-so', 'Good', 'Great'],
        comment: 'Anything to add? (optional)', send: 'Send', close: 'Close', thanks: 'Thank you!',
        failed: 'Could not send. Please try again.', pick: 'Choose a score first.', sending: 'Sending…', label: 'Feedback'
      },
      ru: {
        nps: ['Насколько вероятно, что вы порекомендуете нас другу или коллеге?', 'Точно нет', 'Обязательно'],
        csat: ['Насколько вы довольны нами?', 'Очень недоволен', 'Очень доволен'],
        ces: ['Насколько легко было получить то, что нужно?', 'Очень трудно', 'Очень легко'],
        smiley: ['Как вам у нас?', 'Плохо', 'Отлично'],
        faces: ['Плохо', 'Так себе', 'Хорошо', 'Отлично'],
        comment: 'Хотите что-то добавить? (необязательно)', send: 'Отправить', close: 'Закрыть', thanks: 'Спасибо!',
        failed: 'Не удалось отправить. Попробуйте ещё раз.', pick: 'Сначала выберите оценку.', sending: 'Отправляем…', label: 'Отзыв'
      }
    }[lang];
    var ranges = { nps: [0, 10], csat: [1, 5], ces: [1, 7], smiley: [1, 4] };
    var memoryKey = 'feedbackmesh:' + key.slice(0, 16) + ':' + survey + ':' + customer;

    function remembered() {
      try {
        var kept = JSON.parse(window.localStorage.getItem(memoryKey) || 'null');
        return kept && typeof kept.until === 'number' && kept.until > Date.now();
      } catch (e) { return false; }
    }
    function remember(state) {
      try {
        window.localStorage.setItem(memoryKey, JSON.stringify({ state: state, until: Date.now() + days * 86400000 }));
      } catch (e) { /* private mode: the intake's one-response rule still holds */ }
    }
    function newKey() {
      try { if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); } } catch (e) { }
      var bytes = new Uint8Array(16);
      (window.crypto || window.msCrypto).getRandomValues(bytes);
      return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join('');
    }
    // At most `bytes` of UTF-8, cut between characters (never inside a surrogate pair).
    function cut(text, bytes) {
      var encoder = new TextEncoder();
      var characters = Array.from(text);
      var out = '';
      var used = 0;
      for (var i = 0; i < characters.length; i++) {
        used += encoder.encode(characters[i]).length;
        if (used > bytes) { break; }
        out += characters[i];
      }
      return out;
    }
    function element(name, attributes, text) {
      var node = document.createElement(name);
      Object.keys(attributes || {}).forEach(function (k) { node.setAttribute(k, attributes[k]); });
      if (text) { node.textContent = text; }
      return node;
    }

    if (days > 0 && remembered()) { return; }

    function show() {
      if (!document.body) { return; }
      var host = element('div', { 'data-feedbackmesh': 'widget' });
      var root = host.attachShadow({ mode: 'open' });
      var style = element('style');
      style.textContent =
        ':host{all:initial}' +
        '.box{position:fixed;z-index:2147483000;right:16px;bottom:16px;max-width:min(480px,calc(100vw - 32px));box-sizing:border-box;' +
        'background:#fff;color:#1a1a1a;border:1px solid #8a8a8a;border-radius:8px;padding:16px;box-shadow:0 4px 16px rgba(0,0,0,.2);' +
        'font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}' +
        '.q{margin:0 28px 10px 0;font-weight:600}' +
        '.scores{display:flex;flex-wrap:wrap;gap:4px}' +
        'button{font:inherit;cursor:pointer;border:1px solid #6b6b6b;border-radius:4px;background:#f4f4f4;color:#1a1a1a;min-width:34px;min-height:34px}' +
        'button[aria-pressed=true]{background:#1f5fbf;color:#fff;border-color:#1f5fbf}' +
        'button:focus-visible,textarea:focus-visible{outline:3px solid #e0a400;outline-offset:1px}' +
        '.ends{display:flex;justify-content:space-between;font-size:12px;color:#555;margin:4px 0 10px}' +
        'label{display:block;font-size:13px;margin-bottom:4px}' +
        'textarea{box-sizing:border-box;width:100%;min-height:56px;font:inherit;border:1px solid #6b6b6b;border-radius:4px;padding:4px}' +
        '.send{margin-top:8px;padding:4px 16px;background:#1f5fbf;color:#fff;border-color:#1f5fbf}' +
        '.close{position:absolute;top:8px;right:8px;border:none;background:transparent;font-size:20px;min-width:28px;min-height:28px}' +
        '.status{min-height:1.4em;margin:6px 0 0;font-size:13px}';
      var box = element('section', { 'class': 'box', role: 'dialog', 'aria-modal': 'false', 'aria-label': texts.label, 'aria-describedby': 'fm-q', lang: lang });
      var close = element('button', { 'class': 'close', type: 'button', 'aria-label': texts.close }, '×');
      var words = texts[scale];
      var question = element('p', { 'class': 'q', id: 'fm-q' }, data.question || words[0]);
      var group = element('div', { 'class': 'scores', role: 'group', 'aria-labelledby': 'fm-q' });
      var range = ranges[scale];
      var chosen = null;
      var buttons = [];
      for (var n = range[0]; n <= range[1]; n++) {
        var face = scale === 'smiley';
        var name = face ? texts.faces[n - 1] : String(n) + (n === range[0] ? ', ' + words[1] : n === range[1] ? ', ' + words[2] : '');
        var button = element('button', { type: 'button', 'aria-pressed': 'false', 'aria-label': name, 'data-score': String(n) },
          face ? ['\u{1F61E}', '\u{1F610}', '\u{1F642}', '\u{1F600}'][n - 1] : String(n));
        buttons.push(button);
        group.appendChild(button);
      }
      var ends = element('div', { 'class': 'ends', 'aria-hidden': 'true' });
      ends.appendChild(element('span', {}, words[1]));
      ends.appendChild(element('span', {}, words[2]));
      var label = element('label', { 'for': 'fm-c' }, texts.comment);
      var comment = element('textarea', { id: 'fm-c', maxlength: '1000' });
      var send = element('button', { 'class': 'send', type: 'button' }, texts.send);
      var status = element('p', { 'class': 'status', role: 'status', 'aria-live': 'polite' });
      [close, question, group, ends, label, comment, send, status].forEach(function (n) { box.appendChild(n); });
      // A constructed style sheet is not inline style for a page's Content-Security-Policy.
      try {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(style.textContent);
        root.adoptedStyleSheets = [sheet];
      } catch (e) { root.appendChild(style); }
      root.appendChild(box);
      document.body.appendChild(host);

      // One Idempotency-Key per answer: a retry of the same answer is stored once; a changed
      // answer after a failure is a new request.
      var idempotencyKey = newKey();
      var lastBody = null;
      var busy = false;
      // Where the reader was before Tab took them into the widget: focus goes back there when it closes.
      var lastOutside = null;
      function track(event) { if (event.target !== host) { lastOutside = event.target; } }
      document.addEventListener('focusin', track);
      function closeWidget() {
        document.removeEventListener('focusin', track);
        var inside = root.activeElement !== null;
        if (host.parentNode) { host.parentNode.removeChild(host); }
        if (inside && lastOutside && document.contains(lastOutside) && lastOutside.focus) { lastOutside.focus(); }
      }
      function dismiss(state) {
        remember(state);
        closeWidget();
      }
      buttons.forEach(function (b) {
        b.addEventListener('click', function () {
          chosen = parseInt(b.getAttribute('data-score'), 10);
          buttons.forEach(function (o) { o.setAttribute('aria-pressed', o === b ? 'true' : 'false'); });
          status.textContent = '';
        });
      });
      close.addEventListener('click', function () { dismiss('dismissed'); });
      box.addEventListener('keydown', function (event) { if (event.key === 'Escape') { dismiss('dismissed'); } });
      send.addEventListener('click', function () {
        if (busy) { return; }
        if (chosen === null) { status.textContent = texts.pick; return; }
        busy = true;
        status.textContent = texts.sending;
        var body = { source: 'popup', scale: scale, score: chosen, channel: 'web' };
        if (survey) { body.survey = survey; }
        if (customer) { body.customer = customer; }
        if (data.topic) { body.topic = data.topic; }
        var text = cut(comment.value.trim(), 2000);
        if (text) { body.comment = text; }
        var json = JSON.stringify(body);
        if (lastBody !== null && json !== lastBody) { idempotencyKey = newKey(); }
        lastBody = json;
        fetch(endpoint, {
          method: 'POST', mode: 'cors', credentials: 'omit', keepalive: true,
          headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + key, 'Idempotency-Key': idempotencyKey },
          body: json
        }).then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (answer) {
            var code = answer && answer.error && answer.error.code;
            if (response.status === 202 || code === 'alreadyAnswered') {
              status.textContent = texts.thanks;
              remember('answered');
              Array.prototype.forEach.call(box.querySelectorAll('button,textarea'), function (n) { if (n !== close) { n.disabled = true; } });
              setTimeout(closeWidget, 2500);
            } else {
              busy = false;
              status.textContent = texts.failed;
            }
          });
        }).catch(function () {
          busy = false;
          status.textContent = texts.failed;
        });
      });
    }

    var start = function () { setTimeout(function () { try { show(); } catch (e) { } }, delay); };
    if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', start); } else { start(); }
  } catch (e) { /* the widget never breaks the page it sits on */ }
})();
"""#
}
