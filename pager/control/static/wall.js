// The pager wall: one live stream (GET /events) and the control API's calls, nothing else.
// Every change patches the one element it concerns; only a snapshot (hello) rebuilds.
'use strict';

const MODES = [
  'Flash1Sec', 'Flash30Sec', 'Flash5Min', 'FlashBeep5x5', 'Beep3Times', 'Beep5Min',
  'Glow5Min', 'Glow15Times', 'Vibe1', 'Vibe2', 'Vibe3', 'VibeBeep1', 'VibeBeep2', 'VibeBeep3',
];
const TOKEN_KEY = 'pager-wall-token';
const FEED_MAX = 100;
const JOURNAL_MAX = 200;
const BACKOFF_MAX_MS = 2000;
const TICK_MS = 200;

const $ = (selector, root = document) => root.querySelector(selector);

const view = {
  connection: $('#connection'),
  error: $('#error'),
  tokenForm: $('#token-form'),
  fleet: $('#fleet'),
  wall: $('#wall'),
  waiting: $('#waiting'),
  rowTemplate: $('#row-template'),
  statistics: $('#statistics'),
  transmissions: $('#transmissions'),
  journal: $('#journal'),
  journalRows: $('#journal-rows'),
  journalFilter: $('#journal-filter'),
  clock: $('#clock'),
  clockNow: $('#clock [data-field="now"]'),
  clockState: $('#clock [data-field="state"]'),
  faultList: $('#fault-list'),
  power: $('#power'),
  confirmReset: $('#confirm-reset'),
};
// where #journal and #fleet go back when a transmitter that has them is shown again
const journalAnchor = document.createComment('journal');
view.journal.before(journalAnchor);
const fleetAnchor = document.createComment('fleet');
view.fleet.before(fleetAnchor);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  staff: new Set(),
  clock: { base: 0, at: 0, speed: 1, frozen: false },
  sessions: new Map(), // id -> {session, row, cells, created, notified, waited, late}
  byNumber: new Map(), // pager number -> the id of its active session
  pagers: new Map(), // number -> {pager, tile, fields, alerting}
  transmissionIds: new Set(),
  journalIds: new Set(),
  journalFilter: { method: '', path: '', code: '' },
};

// -- time: the emulator's clock, run locally between clock events ----------------------

function parseLocal(text) {
  // YYYY-MM-DDTHH:MM:SS, the transmitter's local time, kept as if UTC: only differences count
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})$/.exec(text || '');
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
}

function formatLocal(ms) {
  return new Date(ms).toISOString().slice(0, 19);
}

function emulatorNow() {
  const c = state.clock;
  return c.frozen ? c.base : c.base + (performance.now() - c.at) * c.speed;
}

function setClock(clock) {
  state.clock = {
    base: parseLocal(clock.now), at: performance.now(), speed: clock.speed, frozen: clock.frozen,
  };
  view.clock.dataset.frozen = String(clock.frozen);
  view.clock.dataset.speed = String(clock.speed);
  view.clockState.textContent = clock.frozen ? 'frozen' : (clock.speed === 1 ? '' : `×${clock.speed}`);
  tick();
}

function waitedText(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function tick() {
  const now = emulatorNow();
  const shown = Number.isNaN(now) ? '' : formatLocal(now);
  if (view.clockNow.textContent !== shown) {
    view.clockNow.textContent = shown;
    view.clockNow.dateTime = shown;
  }
  for (const item of state.sessions.values()) updateWaited(item, now);
  for (const item of state.pagers.values()) updateAlerting(item, now);
}

// -- the control API ---------------------------------------------------------------------

class NeedsToken extends Error {}

function headers(extra = {}) {
  const h = { ...extra };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}

async function api(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new Error(`the control API cannot be reached (${method} ${path})`);
  }
  if (response.status === 401) {
    askToken();
    throw new NeedsToken('the control API needs its token');
  }
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    throw new Error((data && data.error) || `${method} ${path}: HTTP ${response.status}`);
  }
  return data;
}

function showError(text) {
  view.error.textContent = text;
}

async function act(work) {
  // one user action: its error shown, cleared by the next success
  try {
    const result = await work();
    showError('');
    return result;
  } catch (e) {
    showError(e.message);
    return undefined;
  }
}

async function device(method, path, query, body) {
  const request = { method, path };
  if (query) request.query = query;
  if (body !== undefined) request.body = body;
  const answer = await api('POST', '/device-request', request);
  if (!answer.code.startsWith('2.')) {
    const error = answer.body && answer.body.error;
    throw new Error(error ? `${answer.code} ${error.message}` : answer.code);
  }
  return answer;
}

// A number typed in a form goes as a number; anything else as typed, for the API to refuse
function numeric(text) {
  const t = text.trim();
  return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
}

// -- the token ---------------------------------------------------------------------------

let tokenWaiters = [];

function askToken() {
  view.tokenForm.hidden = false;
  $('input[name="token"]', view.tokenForm).focus();
}

function tokenGiven() {
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

view.tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('input[name="token"]', view.tokenForm);
  state.token = input.value;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  input.value = '';
  view.tokenForm.hidden = true;
  const waiters = tokenWaiters;
  tokenWaiters = [];
  for (const resolve of waiters) resolve();
});

// -- the stream --------------------------------------------------------------------------

function setConnected(connected) {
  view.connection.dataset.state = connected ? 'connected' : 'disconnected';
  view.connection.textContent = connected ? 'connected' : 'disconnected: reconnecting…';
}

async function follow() {
  let backoff = 250;
  for (;;) {
    try {
      const response = await fetch('/events', { headers: headers(), cache: 'no-store' });
      if (response.status === 401) {
        setConnected(false);
        askToken();
        await tokenGiven();
        continue;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      backoff = 250;
      await read(response.body.getReader());
    } catch (e) {
      // the emulator went away (stopped, restarted, power cycled): say so, and come back
    }
    setConnected(false);
    await new Promise((resolve) => setTimeout(resolve, backoff));
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  }
}

async function read(reader) {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) dispatch(name, JSON.parse(data.join('\n')));
    }
  }
}

function dispatch(name, data) {
  const handler = HANDLERS[name];
  if (handler) handler(data);
}

const HANDLERS = {
  hello(d) {
    setConnected(true);
    showDevice(d.device);
    setClock(d.clock);
    showStatistics(d.statistics);
    showSessions(d.sessions);
    showPagers(d.pagers.pagers, d.transmissions);
    showTransmissions(d.transmissions);
    showFaults(d.faults);
    showJournal(d.journal);
  },
  change(d) {
    if (d.statistics) showStatistics(d.statistics);
    if (d.session) {
      if (d.session.state === 'cleared') removeSession(d.session);
      else upsertSession(d.session);
    }
  },
  transmission(d) {
    const { pager, ...tx } = d;
    addTransmission(tx, true);
    upsertPager(pager);
  },
  clock(d) { setClock(d); },
  faults(d) { showFaults(d); },
  journal(d) { addEntry(d); },
};

// -- device and fleet --------------------------------------------------------------------

function showDevice(dev) {
  state.staff = new Set(dev.staffPagers || []);
  $('#device-name').textContent = dev.uri;
  const fleet = dev.fleet || [];
  view.fleet.replaceChildren();
  if (fleet.length > 1) {
    for (const t of fleet) {
      const a = document.createElement('a');
      a.dataset.transmitter = String(t.index);
      a.textContent = `Transmitter ${t.index}`;
      if (t.control) a.href = t.control;
      if (t.coap === dev.uri) a.setAttribute('aria-current', 'page');
      view.fleet.append(a);
    }
    view.fleet.hidden = false;
    if (!view.fleet.isConnected) fleetAnchor.after(view.fleet);
  } else {
    view.fleet.remove();
  }
}

// -- statistics --------------------------------------------------------------------------

function showStatistics(statistics) {
  for (const [name, value] of Object.entries(statistics)) {
    const cell = $(`[data-stat="${name}"]`, view.statistics);
    if (cell && cell.textContent !== String(value)) cell.textContent = String(value);
  }
}

// -- the waiting list --------------------------------------------------------------------

function showSessions(sessions) {
  state.sessions.clear();
  state.byNumber.clear();
  view.waiting.replaceChildren();
  for (const s of sessions) upsertSession(s);
}

function newRow(session) {
  const row = view.rowTemplate.content.firstElementChild.cloneNode(true);
  row.dataset.session = String(session.id);
  const cells = {};
  for (const cell of row.querySelectorAll('[data-field]')) cells[cell.dataset.field] = cell;
  const select = $('select[name="mode"]', row);
  const none = document.createElement('option');
  none.value = '';
  none.textContent = 'default';
  select.append(none);
  for (const mode of MODES) {
    const option = document.createElement('option');
    option.value = mode;
    option.textContent = mode;
    select.append(option);
  }
  const id = `s${session.id}`;
  select.id = `${id}-mode`;
  $('input[name="message"]', row).id = `${id}-message`;
  return { row, cells };
}

function upsertSession(session) {
  let item = state.sessions.get(session.id);
  if (!item) {
    const { row, cells } = newRow(session);
    item = { session, row, cells, waited: '', late: null };
    state.sessions.set(session.id, item);
    insertSorted(view.waiting, row, session.id, (el) => Number(el.dataset.session));
  }
  item.session = session;
  item.created = parseLocal(session.created);
  item.notified = session.notified ? parseLocal(session.notified) : null;
  state.byNumber.set(session.number, session.id);
  const { cells } = item;
  setText(cells.number, String(session.number));
  setText(cells.label, session.label == null ? '' : session.label);
  setText(cells.party, String(session.partySize));
  setText(cells.goal, waitedText(session.goalInSeconds));
  item.row.dataset.state = session.state;
  updateWaited(item, emulatorNow());
  touchPager(session.number);
}

function removeSession(session) {
  const item = state.sessions.get(session.id);
  if (!item) return;
  state.sessions.delete(session.id);
  if (state.byNumber.get(session.number) === session.id) state.byNumber.delete(session.number);
  item.row.remove();
  touchPager(session.number);
}

function updateWaited(item, now) {
  const s = item.session;
  const seconds = ((item.notified === null ? now : item.notified) - item.created) / 1000;
  const text = Number.isNaN(seconds) ? '' : waitedText(seconds);
  if (text !== item.waited) {
    item.waited = text;
    item.cells.waited.textContent = text;
  }
  const late = seconds > s.goalInSeconds;
  if (late !== item.late) {
    item.late = late;
    item.row.dataset.late = String(late);
  }
}

function sessionOf(row) {
  return state.sessions.get(Number(row.dataset.session));
}

view.waiting.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const row = button.closest('[data-session]');
  const item = sessionOf(row);
  if (!item) return;
  const query = { number: item.session.number };
  const action = button.dataset.action;
  const body = { action };
  if (action === 'page') {
    const mode = $('select[name="mode"]', row).value;
    const message = $('input[name="message"]', row).value;
    if (mode) body.pageMode = mode;
    if (message) body.message = message;
  }
  act(() => device('PUT', '/v1/sessions', query, body));
});

view.waiting.addEventListener('keydown', (event) => {
  // Enter in a row's message field pages, as its button does
  if (event.key === 'Enter' && event.target.matches('input[name="message"]')) {
    event.preventDefault();
    $('button[data-action="page"]', event.target.closest('[data-session]')).click();
  }
});

// -- the pager wall ----------------------------------------------------------------------

function showPagers(pagers, transmissions) {
  state.pagers.clear();
  view.wall.replaceChildren();
  for (const p of pagers) upsertPager(p);
  for (const tx of transmissions) {
    if (!state.pagers.has(tx.number)) touchPager(tx.number);
  }
  // the sessions shown before this had their tiles cleared with the rest
  for (const number of state.byNumber.keys()) touchPager(number);
}

function idlePager(number) {
  return {
    number, state: 'idle', pageMode: null, message: null, overrideCodes: [],
    alertingUntil: null, lastTransmission: null,
  };
}

function touchPager(number) {
  // a tile for every pager with a session or a transmission
  const item = state.pagers.get(number);
  const hasSession = state.byNumber.has(number);
  if (!item) {
    if (hasSession) upsertPager(idlePager(number));
    return;
  }
  item.tile.dataset.hasSession = String(hasSession);
  if (!hasSession && !item.pager.lastTransmission) {
    item.tile.remove();
    state.pagers.delete(number);
  }
}

function newTile(number) {
  const tile = document.createElement('article');
  tile.className = 'tile';
  tile.dataset.pager = String(number);
  tile.setAttribute('aria-label', `pager ${number}`);
  const fields = {};
  for (const name of ['number', 'mode', 'message', 'codes']) {
    const el = document.createElement(name === 'number' ? 'h3' : 'p');
    el.dataset.field = name;
    tile.append(el);
    fields[name] = el;
  }
  fields.number.textContent = String(number);
  return { tile, fields };
}

function upsertPager(pager) {
  let item = state.pagers.get(pager.number);
  if (!item) {
    const { tile, fields } = newTile(pager.number);
    item = { pager, tile, fields, alerting: null };
    state.pagers.set(pager.number, item);
    insertSorted(view.wall, tile, pager.number, (el) => Number(el.dataset.pager));
  }
  item.pager = pager;
  const last = pager.lastTransmission;
  item.from = last ? parseLocal(last.time) : NaN;
  item.until = last ? parseLocal(last.alertUntil) : NaN;
  item.tile.dataset.staff = String(state.staff.has(pager.number));
  setText(item.fields.message, last && last.message ? last.message : '');
  const codes = last ? last.overrideCodes.map((c) => c.code + (c.value == null ? '' : c.value)) : [];
  setText(item.fields.codes, codes.join(' '));
  item.alerting = null; // recomputed now
  updateAlerting(item, emulatorNow());
  item.tile.dataset.hasSession = String(state.byNumber.has(pager.number));
}

function updateAlerting(item, now) {
  const alerting = item.from <= now && now < item.until; // false for NaN: never paged
  if (alerting === item.alerting) return;
  item.alerting = alerting;
  item.tile.dataset.alerting = String(alerting);
  if (alerting) {
    const mode = item.pager.lastTransmission.pageMode;
    item.tile.dataset.mode = mode;
    item.fields.mode.textContent = mode;
  } else {
    delete item.tile.dataset.mode;
    item.fields.mode.textContent = 'idle';
  }
}

// -- transmissions -----------------------------------------------------------------------

function showTransmissions(transmissions) {
  state.transmissionIds.clear();
  view.transmissions.replaceChildren();
  for (const tx of transmissions) addTransmission(tx, false);
}

function addTransmission(tx, live) {
  if (state.transmissionIds.has(tx.id)) return;
  state.transmissionIds.add(tx.id);
  const item = document.createElement('li');
  item.dataset.transmission = String(tx.id);
  item.dataset.pager = String(tx.number);
  const codes = tx.overrideCodes.map((c) => c.code + (c.value == null ? '' : c.value)).join(' ');
  const time = document.createElement('time');
  time.textContent = tx.time.slice(11);
  time.dateTime = tx.time;
  item.append(time, ` pager ${tx.number} · ${tx.pageMode}`);
  if (tx.message) item.append(` · “${tx.message}”`);
  if (codes) item.append(` · ${codes}`);
  view.transmissions.prepend(item);
  while (view.transmissions.childElementCount > FEED_MAX) {
    const gone = view.transmissions.lastElementChild;
    state.transmissionIds.delete(Number(gone.dataset.transmission));
    gone.remove();
  }
  if (live && !state.pagers.has(tx.number)) touchPager(tx.number);
}

// -- faults, power cycle, reset ----------------------------------------------------------

function showFaults(faults) {
  view.faultList.replaceChildren();
  for (const f of faults.faults) {
    const item = document.createElement('li');
    item.dataset.fault = String(f.id);
    const parts = [`#${f.id} ${f.kind}`, f.path || 'every path'];
    if (f.direction) parts.push(f.direction);
    if (f.kind === 'error') parts.push(f.code);
    if (f.seconds) parts.push(`${f.seconds} s`);
    if (f.probability !== 1) parts.push(`p=${f.probability}`);
    parts.push(f.remaining == null ? 'until removed' : `${f.remaining} left`);
    parts.push(`${f.hits} hits`);
    const text = document.createElement('span');
    text.textContent = parts.join(' · ');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.action = 'remove-fault';
    button.textContent = 'Remove';
    button.setAttribute('aria-label', `remove fault ${f.id}`);
    item.append(text, button);
    view.faultList.append(item);
  }
  view.power.textContent = faults.unreachable ? '(powered off)' : '';
}

view.faultList.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action="remove-fault"]');
  if (!button) return;
  const id = button.closest('[data-fault]').dataset.fault;
  act(() => api('DELETE', `/faults/${id}`));
});

$('#fault-add').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const body = { kind: form.elements.kind.value };
  for (const name of ['path', 'direction', 'code']) {
    const value = form.elements[name].value.trim();
    if (value) body[name] = value;
  }
  for (const name of ['count', 'probability', 'seconds', 'window', 'seed']) {
    const value = form.elements[name].value.trim();
    if (value) body[name] = numeric(value);
  }
  act(() => api('POST', '/faults', body));
});

$('#power-cycle').addEventListener('submit', (event) => {
  event.preventDefault();
  const seconds = numeric(event.currentTarget.elements.seconds.value);
  act(() => api('POST', '/power-cycle', { seconds }));
});

$('button[data-action="reset"]').addEventListener('click', () => view.confirmReset.showModal());
$('button[data-action="cancel"]', view.confirmReset).addEventListener('click', () => {
  view.confirmReset.close();
});
$('button[data-action="confirm"]', view.confirmReset).addEventListener('click', () => {
  view.confirmReset.close();
  act(() => api('POST', '/reset'));
});

// -- the clock's controls ----------------------------------------------------------------

function clockAction(path, body) {
  return act(async () => {
    const clock = await api('POST', path, body);
    setClock(clock);
    return clock;
  });
}

$('#clock-set').addEventListener('submit', (event) => {
  event.preventDefault();
  clockAction('/clock/set', { datetime: event.currentTarget.elements.when.value.trim() });
});
$('#clock-advance').addEventListener('submit', (event) => {
  event.preventDefault();
  clockAction('/clock/advance', { seconds: numeric(event.currentTarget.elements.seconds.value) });
});
$('#clock-speed').addEventListener('submit', (event) => {
  event.preventDefault();
  clockAction('/clock/speed', { factor: numeric(event.currentTarget.elements.factor.value) });
});
$('button[data-action="freeze"]').addEventListener('click', () => clockAction('/clock/freeze'));
$('button[data-action="unfreeze"]').addEventListener('click', () => clockAction('/clock/unfreeze'));

// -- the journal -------------------------------------------------------------------------

function showJournal(journal) {
  if (!journal.enabled) {
    view.journal.remove();
    return;
  }
  if (!view.journal.isConnected) journalAnchor.after(view.journal);
  state.journalIds.clear();
  view.journalRows.replaceChildren();
  for (const entry of journal.entries) addEntry(entry);
}

function matchesFilter(entry) {
  const f = state.journalFilter;
  return (!f.method || entry.method === f.method)
    && (!f.path || entry.path === f.path)
    && (!f.code || entry.code === f.code);
}

function addEntry(entry) {
  if (state.journalIds.has(entry.id)) return;
  state.journalIds.add(entry.id);
  const row = document.createElement('tr');
  row.dataset.entry = String(entry.id);
  row.dataset.method = entry.method;
  row.dataset.path = entry.path;
  row.dataset.code = entry.code || '';
  const query = entry.query.length ? `?${entry.query.join('&')}` : '';
  const cells = [
    String(entry.id),
    entry.device_time.slice(11),
    entry.peer,
    `${entry.method} ${entry.path}${query}${entry.duplicate ? ' (duplicate)' : ''}`,
    (entry.code || 'no answer') + (entry.fault ? ` · fault ${entry.fault.id} ${entry.fault.kind}` : ''),
    entry.latency_ms == null ? '' : String(entry.latency_ms),
  ];
  for (const text of cells) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.append(cell);
  }
  row.hidden = !matchesFilter(entry);
  // newest first; an entry answered late may come after a newer one
  insertSorted(view.journalRows, row, -entry.id, (el) => -Number(el.dataset.entry));
  while (view.journalRows.childElementCount > JOURNAL_MAX) {
    const gone = view.journalRows.lastElementChild;
    state.journalIds.delete(Number(gone.dataset.entry));
    gone.remove();
  }
}

view.journalFilter.addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const filter = {
    method: form.elements.method.value.trim().toUpperCase(),
    path: form.elements.path.value.trim(),
    code: form.elements.code.value.trim(),
  };
  // the control API checks the filter (and reads nothing past the newest entry shown)
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filter)) if (value) params.set(name, value);
  const newest = Math.max(0, ...state.journalIds);
  params.set('after', String(newest));
  act(async () => {
    await api('GET', `/journal?${params}`);
    state.journalFilter = filter;
    for (const row of view.journalRows.children) {
      row.hidden = !matchesFilter({
        method: row.dataset.method, path: row.dataset.path, code: row.dataset.code || null,
      });
    }
  });
});

// -- small helpers -----------------------------------------------------------------------

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

// Insert `el` among `parent`'s children ordered by key (ascending); appending is the
// common case (ids and numbers grow), so the search starts from the end.
function insertSorted(parent, el, key, keyOf) {
  let after = parent.lastElementChild;
  while (after && keyOf(after) > key) after = after.previousElementSibling;
  if (after) after.after(el);
  else parent.prepend(el);
}

setInterval(tick, TICK_MS);
setConnected(false);
follow();
