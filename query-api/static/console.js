// asset-inventory console: fetches each page's data fragment with the viewer token (kept in
// sessionStorage, for this tab only), drives the "as of" slider, downloads exports with the
// token, and reads the live change feed over fetch() (EventSource cannot send headers),
// resuming with Last-Event-ID so that no change is missed.
(() => {
  'use strict';
  const KEY = 'asset-inventory-token';
  const token = () => sessionStorage.getItem(KEY);
  const withAuth = (extra) => {
    const h = Object.assign({}, extra || {});
    const t = token();
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  };
  const $ = (id) => document.getElementById(id);
  const tokenForm = $('token-form');
  const forget = $('token-forget');
  let onToken = () => {};

  function askToken(then) {
    onToken = then;
    tokenForm.hidden = false;
    $('token').focus();
  }
  tokenForm.addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $('token').value);
    $('token').value = '';
    tokenForm.hidden = true;
    forget.hidden = false;
    onToken();
  });
  forget.addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  forget.hidden = !token();

  // The "as of" slider: over the stream's sequences, once a fragment says how far it goes.
  function slider(frag) {
    const s = $('as_of_slider');
    const field = $('as_of');
    const max = Number(frag.dataset.seq || 0);
    if (!s || !max) return;
    s.min = '1';
    s.max = String(max);
    s.value = String(frag.dataset.asOfSeq || max);
    s.disabled = false;
    s.setAttribute('aria-valuetext', 'seq:' + s.value);
    s.addEventListener('input', () => {
      field.value = 'seq:' + s.value;
      s.setAttribute('aria-valuetext', field.value);
    });
    s.addEventListener('change', () => s.form.requestSubmit());
  }

  // Exports are data: fetched with the token and saved.
  function downloads(root) {
    root.querySelectorAll('a[data-download]').forEach((a) => {
      a.addEventListener('click', async (e) => {
        e.preventDefault();
        const resp = await fetch(a.href, { headers: withAuth() });
        if (resp.status === 401) return askToken(() => a.click());
        const url = URL.createObjectURL(await resp.blob());
        const tmp = document.createElement('a');
        tmp.href = url;
        tmp.download = a.dataset.download;
        document.body.appendChild(tmp);
        tmp.click();
        tmp.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      });
    });
  }

  async function loadFragment(main) {
    main.setAttribute('aria-busy', 'true');
    let resp;
    try {
      resp = await fetch(main.dataset.fragment + location.search, { headers: withAuth() });
    } catch (err) {
      main.textContent = 'The server could not be reached: ' + err;
      main.setAttribute('aria-busy', 'false');
      return;
    }
    main.innerHTML = await resp.text();
    main.dataset.status = String(resp.status);
    main.setAttribute('aria-busy', 'false');
    if (resp.status === 401) {
      askToken(() => loadFragment(main));
      return;
    }
    const frag = main.querySelector('.fragment');
    if (frag) slider(frag);
    downloads(main);
  }

  // The live view: the change feed over fetch(), filters from the URL.
  function live(root) {
    const rows = $('live-rows');
    const status = $('live-status');
    const toggle = $('live-toggle');
    const params = new URLSearchParams(location.search);
    const api = new URLSearchParams();
    for (const k of ['provider', 'kind', 'type']) {
      const v = params.get(k);
      if (v) api.set(k, v);
    }
    const url = root.dataset.live + (api.toString() ? '?' + api : '');
    let last = null;
    let ctrl = null;
    let paused = false;
    let retry = null;
    const say = (s) => { status.textContent = s; root.dataset.state = s; };

    function row(c) {
      const tr = document.createElement('tr');
      tr.dataset.seq = c.seq;
      tr.dataset.key = c.key;
      const cell = (text) => { const td = document.createElement('td'); td.textContent = text; tr.appendChild(td); return td; };
      cell(String(c.seq));
      cell(c.recorded_at || c.time || '');
      cell(c.type);
      const td = cell('');
      const a = document.createElement('a');
      a.href = '/ui/asset?key=' + encodeURIComponent(c.key);
      a.textContent = (c.name || c.key) + ' ';
      const code = document.createElement('code');
      code.textContent = c.key;
      td.append(a, code);
      rows.prepend(tr);
      while (rows.children.length > 500) rows.lastChild.remove();
    }

    function handle(block) {
      let event = 'message';
      let id = null;
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? '' : line.slice(i + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'id') id = value;
        else if (field === 'data') data.push(value);
      }
      if (id !== null) last = id;
      if (event === 'change' && data.length) row(JSON.parse(data.join('\n')));
    }

    async function connect() {
      clearTimeout(retry);
      if (paused) return;
      ctrl = new AbortController();
      const headers = withAuth({ Accept: 'text/event-stream' });
      if (last) headers['Last-Event-ID'] = last;
      try {
        const resp = await fetch(url, { headers, signal: ctrl.signal, cache: 'no-store' });
        if (resp.status === 401) {
          say('This server needs a viewer token');
          askToken(connect);
          return;
        }
        if (!resp.ok) throw new Error('HTTP ' + resp.status);
        say(last ? 'Connected (resumed after seq ' + last + ')' : 'Connected');
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            handle(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
      } catch (err) {
        if (err.name === 'AbortError') return;
      }
      if (!paused) {
        say('Disconnected; reconnecting…');
        retry = setTimeout(connect, 1000);
      }
    }

    toggle.addEventListener('click', () => {
      paused = !paused;
      toggle.setAttribute('aria-pressed', String(paused));
      toggle.textContent = paused ? 'Resume' : 'Pause';
      if (paused) {
        if (ctrl) ctrl.abort();
        say('Paused at seq ' + (last || '—'));
      } else {
        connect();
      }
    });
    connect();
  }

  function start() {
    const main = $('main');
    if (main && main.dataset.fragment) loadFragment(main);
    const l = $('live');
    if (l) live(l);
  }
  start();
})();
