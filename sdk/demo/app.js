// Demo playground of the presence SDK: everything here goes through window.RealtimeSDK,
// the SDK's <script> bundle.
(function () {
  'use strict';

  var SDK = window.RealtimeSDK;
  var $ = function (id) {
    return document.getElementById(id);
  };

  var els = {
    form: $('session-form'),
    server: $('server-url'),
    room: $('room'),
    user: $('user'),
    transport: $('transport'),
    token: $('token'),
    join: $('join'),
    leave: $('leave'),
    drop: $('drop'),
    conn: $('conn-status'),
    members: $('members'),
    memberCount: $('member-count'),
    messages: $('messages'),
    chatForm: $('chat-form'),
    chatText: $('chat-text'),
    chatSend: $('chat-send'),
    log: $('log'),
    ownState: $('own-state'),
    statusButtons: $('status-buttons'),
    noteForm: $('note-form'),
    note: $('note'),
    patchForm: $('patch-form'),
    patch: $('patch'),
    topicForm: $('topic-form'),
    topic: $('topic'),
    topicSubscribe: $('topic-subscribe'),
    topicList: $('topic-list'),
    topicMessages: $('topic-messages'),
    publishForm: $('publish-form'),
    publishData: $('publish-data'),
    publishCurl: $('publish-curl'),
    emitSelf: $('emit-self'),
    backendNote: $('backend-note'),
    eventsMode: $('events-mode'),
    paging: $('paging'),
    pagingText: $('paging-text'),
    loadMore: $('load-more'),
    botsForm: $('bots-form'),
    botCount: $('bot-count'),
    botsSet: $('bots-set'),
    botsRemove: $('bots-remove'),
  };

  /** Most members the list renders (a big room shows its count and the first ones). */
  var MAX_RENDERED = 200;
  /** Channel options of each room view (the session form's select). */
  var VIEWS = {
    each: {},
    batched: { events: 'batched', snapshot: 'page', pageSize: 50 },
    count: { events: 'count', pageSize: 50 },
  };

  /** The current session: one client and its channel. */
  var client = null;
  var channel = null;
  /** The topics this tab subscribed to, by name: { sub, state }. */
  var topics = {};

  // --- setup ----------------------------------------------------------------------------

  var params = new URLSearchParams(location.search);
  // localStorage keeps the form's defaults for the next visit; sessionStorage keeps this
  // tab's session (who the user is, and whether it was in a room) across reloads, so that
  // a reload comes back as the same user in the same room, on the same connection.
  var saved = readJSON(localStorage, 'rtm-demo');
  var session = readJSON(sessionStorage, 'rtm-demo-session');
  els.server.value = params.get('server') || session.server || saved.server || 'http://localhost:3000';
  els.room.value = params.get('room') || session.room || saved.room || 'lobby';
  els.user.value = params.get('user') || session.user || randomUser();
  els.transport.value = params.get('transport') || session.transport || saved.transport || 'auto';
  els.eventsMode.value = params.get('events') || session.events || 'each';
  if (!VIEWS[els.eventsMode.value]) els.eventsMode.value = 'each';
  var savedTopics = Array.isArray(session.topics) ? session.topics.filter(function (t) {
    return typeof t === 'string';
  }) : [];
  saveSession(session.joined === true);
  $('sdk-version').textContent = 'SDK ' + SDK.VERSION + ' · protocol v' + SDK.PROTOCOL_VERSION;

  function readJSON(storage, key) {
    try {
      var v = JSON.parse(storage.getItem(key) || '{}');
      return v && typeof v === 'object' ? v : {};
    } catch (e) {
      return {};
    }
  }

  function saveSession(joined) {
    try {
      sessionStorage.setItem(
        'rtm-demo-session',
        JSON.stringify({
          server: els.server.value,
          room: els.room.value,
          user: els.user.value,
          transport: els.transport.value,
          events: els.eventsMode.value,
          joined: joined,
          topics: joined ? topicNames() : [],
        }),
      );
    } catch (e) {
      /* storage disabled */
    }
  }

  function randomUser() {
    var names = ['ada', 'grace', 'alan', 'linus', 'margaret', 'ken', 'barbara', 'dennis'];
    return names[Math.floor(Math.random() * names.length)] + '-' + Math.random().toString(36).slice(2, 5);
  }

  // --- session --------------------------------------------------------------------------

  els.form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    start();
  });
  els.leave.addEventListener('click', function () {
    stop();
  });
  els.drop.addEventListener('click', function () {
    if (!client) return;
    log('conn', 'simulated network drop: closing the Engine.IO connection');
    client.dropTransport();
  });

  function start() {
    var keep = topicNames();
    stop(true);
    var url = els.server.value.trim();
    var roomId = els.room.value.trim();
    var userId = els.user.value.trim();
    if (!url || !roomId || !userId) return;
    try {
      localStorage.setItem('rtm-demo', JSON.stringify({ server: url, room: roomId, transport: els.transport.value }));
    } catch (e) {
      /* private mode */
    }
    saveSession(true);
    var options = { reconnectionDelayMs: 500, reconnectionDelayMaxMs: 3000 };
    var transports = { websocket: ['websocket'], polling: ['polling'], upgrade: ['polling', 'websocket'] };
    if (transports[els.transport.value]) options.transports = transports[els.transport.value];
    if (els.token.value.trim()) options.token = els.token.value.trim();

    client = new SDK.RealtimeClient(url, options);
    wireClient(client);
    var view = VIEWS[els.eventsMode.value] || VIEWS.each;
    var channelOptions = { userId: userId, state: { status: 'available' } };
    Object.keys(view).forEach(function (k) {
      channelOptions[k] = view[k];
    });
    // ?reloadProbeMs=: how long a reloaded (or duplicated) tab waits for another tab to say
    // it still holds the stored connection (the SDK's default, 250 ms, unless given).
    var probeMs = Number(params.get('reloadProbeMs'));
    if (probeMs > 0) channelOptions.reloadProbeMs = probeMs;
    channel = client.presence(roomId, channelOptions);
    wireChannel(channel);
    setSessionUI(true);
    // A reload subscribes this tab's topics again.
    var again = savedTopics.concat(keep);
    savedTopics = [];
    again.forEach(subscribeTopic);
    log('conn', 'joining ' + q(roomId) + ' as ' + q(userId) + ' on ' + url);
    var thisChannel = channel;
    channel.join().then(
      function (res) {
        log('sync', 'joined: connId ' + short(res.self.connId) + ', epoch ' + res.self.epoch + ', ' + snapshotText(res.snapshot));
        if (thisChannel !== channel) return;
        els.chatText.focus();
        // Count only: no list comes with the join; show the first page as a picture.
        if (thisChannel.eventsMode === 'count') loadNextPage();
      },
      function (err) {
        if (thisChannel !== channel) return;
        log('error', 'join failed: ' + describe(err));
        stop();
      },
    );
  }

  function stop(quiet) {
    var c = client;
    var ch = channel;
    if (!quiet) saveSession(false);
    client = null;
    channel = null;
    topics = {};
    renderTopics();
    setSessionUI(false);
    renderMembers();
    renderOwnState();
    if (!c) return;
    var done = function () {
      c.disconnect();
    };
    if (ch && ch.active) {
      ch.leave().then(
        function (res) {
          if (!quiet) log('leave', 'left the room (removed: ' + res.removed + ')');
          done();
        },
        function (err) {
          log('error', 'leave: ' + describe(err));
          done();
        },
      );
    } else {
      done();
    }
  }

  function setSessionUI(active) {
    els.join.textContent = active ? 'Rejoin' : 'Join room';
    els.leave.disabled = !active;
    els.drop.disabled = !active;
    els.chatText.disabled = !active;
    els.chatSend.disabled = !active;
    els.topic.disabled = !active;
    els.topicSubscribe.disabled = !active;
    els.emitSelf.disabled = !active;
    els.botsSet.disabled = !active;
    els.botsRemove.disabled = !active;
    els.eventsMode.disabled = active;
    if (!active) setConn('idle', 'Not connected');
    updateFacts();
  }

  // --- client and channel events --------------------------------------------------------

  function wireClient(c) {
    var mine = function () {
      return c === client;
    };
    setConn('connecting', 'Connecting…');
    c.on('connect', function () {
      if (!mine()) return;
      setConn('connected', 'Connected · ' + transportName(c));
      log('conn', 'connected (' + transportName(c) + ')');
      // Polling upgrades to WebSocket a moment later.
      setTimeout(function () {
        if (mine() && c.connected) setConn('connected', 'Connected · ' + transportName(c));
      }, 1500);
    });
    c.on('disconnect', function (reason) {
      if (!mine()) return;
      log('conn', 'disconnected: ' + reason);
      if (c.status === 'reconnecting') setConn('reconnecting', 'Reconnecting…');
    });
    c.on('reconnecting', function (attempt) {
      if (!mine()) return;
      setConn('reconnecting', 'Reconnecting… (attempt ' + attempt + ')');
    });
    c.on('reconnect', function (attempt) {
      if (mine()) log('conn', 'reconnected after ' + attempt + ' attempt(s)');
    });
    c.on('connect_error', function (err) {
      if (!mine()) return;
      log('error', describe(err));
      if (c.status === 'disconnected') setConn('error', 'Connection refused');
      else setConn('reconnecting', 'Cannot reach server, retrying…');
    });
    c.on('chat:message', function (m) {
      if (mine()) addMessage(m);
    });
    // Any event a backend sends to this socket, its user or its room (POST /v1/.../emit).
    c.on('demo:notice', function (data) {
      if (mine()) log('event', 'demo:notice from a backend: ' + truncate(JSON.stringify(data), 80));
    });
    c.topics.on('subscribed', function (topic, resubscribed) {
      if (!mine()) return;
      if (resubscribed) log('topic', 'subscribed again to ' + q(topic) + ' on the new socket');
      if (topics[topic]) topics[topic].state = 'subscribed';
      renderTopics();
    });
    c.topics.on('error', function (err, topic) {
      if (!mine()) return;
      log('error', 'topic ' + q(topic) + ': ' + describe(err));
      if (topics[topic] && !topics[topic].sub.active) delete topics[topic];
      renderTopics();
      saveSession(true);
    });
  }

  function wireChannel(ch) {
    var mine = function () {
      return ch === channel;
    };
    ch.on('change', function () {
      if (!mine()) return;
      scheduleRender();
    });
    ch.on('status', function () {
      if (mine()) updateFacts();
    });
    ch.on('sync', function (info) {
      if (!mine()) return;
      var text = {
        join: 'snapshot after join',
        resume: 'resumed the same connection: nobody saw a leave/join',
        rejoin: 'server said not_joined: joined again with a new connection',
        gap: 'missed events (seq gap): resynced',
        stale_epoch: 'stale epoch: resynced',
        resync: 'the server asked for a resync: resynced',
      }[info.reason];
      log('sync', text + ' <seq ' + info.snapshot.seq + ', ' + snapshotText(info.snapshot) + '>');
    });
    // Revision 3: coming back, the channel asks for what it missed since its last event.
    ch.on('recover', function (r) {
      if (!mine()) return;
      log(
        'sync',
        r.recovered
          ? 'recovered ' + r.replayed + ' missed event(s) from the room history'
          : 'the room history did not reach back: fresh snapshot',
      );
    });
    ch.on('count', function () {
      if (mine()) updateBigRoom();
    });
    ch.on('join', function (e) {
      if (mine()) log('join', who(e) + (e.userJoined ? ' joined' : ' opened another connection') + stateText(e.state) + seqText(e));
    });
    ch.on('update', function (e) {
      if (mine()) log('update', who(e) + ' →' + stateText(e.state) + seqText(e));
    });
    ch.on('leave', function (e) {
      if (mine()) log('leave', who(e) + (e.userLeft ? ' left' : ' closed a connection') + ' (' + e.reason + ')' + seqText(e));
    });
    ch.on('error', function (err) {
      if (mine()) log('error', describe(err));
    });
  }

  // --- own state ------------------------------------------------------------------------

  els.statusButtons.addEventListener('click', function (ev) {
    var btn = ev.target.closest('button[data-status]');
    if (btn) patchState({ status: btn.getAttribute('data-status') });
  });
  els.noteForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var note = els.note.value.trim();
    patchState({ note: note || null });
  });
  els.patchForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var patch;
    try {
      patch = JSON.parse(els.patch.value);
    } catch (e) {
      log('error', 'the patch is not valid JSON: ' + e.message);
      return;
    }
    patchState(patch);
  });

  function patchState(patch) {
    if (!channel) {
      log('error', 'join a room first');
      return;
    }
    var ch = channel;
    ch.setState(patch).then(
      function (res) {
        if (ch !== channel) return;
        log('update', 'setState ' + JSON.stringify(patch) + ' → ' + (res.queued ? 'queued until the channel is back' : 'epoch ' + res.epoch + (res.changed ? '' : ' (no change)')));
        renderOwnState();
      },
      function (err) {
        log('error', 'setState: ' + describe(err));
      },
    );
    renderOwnState();
  }

  function renderOwnState() {
    var state = channel ? channel.state : {};
    els.ownState.textContent = JSON.stringify(state, null, 2);
    var current = state.status || '';
    var buttons = els.statusButtons.querySelectorAll('button');
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute('aria-pressed', String(buttons[i].getAttribute('data-status') === current));
    }
  }

  // --- members --------------------------------------------------------------------------

  /** scheduleRender coalesces the re-renders of a burst of changes (a big room's batch). */
  var renderTimer = null;
  function scheduleRender() {
    if (renderTimer !== null) return;
    renderTimer = setTimeout(function () {
      renderTimer = null;
      renderMembers();
      renderOwnState();
      updateFacts();
    }, 30);
  }

  function snapshotText(snap) {
    if (snap.count && snap.connections.length === 0) return 'count ' + snap.count.connections + ' connection(s), no list';
    var text = snap.connections.length + ' connection(s)';
    if (snap.next !== undefined) text += ' (a page of ' + snap.count.connections + (snap.truncated ? ', truncated' : '') + ')';
    return text;
  }

  function renderMembers() {
    updateBigRoom();
    var list = els.members;
    list.textContent = '';
    if (!channel || channel.status === 'idle' || channel.status === 'left') {
      list.appendChild(el('li', 'empty', 'Join a room to see who is here.'));
      els.memberCount.textContent = '0 online';
      return;
    }
    var users = channel.members.users();
    var me = channel.userId;
    users.sort(function (a, b) {
      return (b.userId === me) - (a.userId === me) || a.userId.localeCompare(b.userId);
    });
    var people = channel.complete ? users.length : channel.count.members;
    var connections = channel.complete ? channel.members.size : channel.count.connections;
    els.memberCount.textContent =
      people + (people === 1 ? ' person' : ' people') + ' · ' + connections + (connections === 1 ? ' connection' : ' connections');
    if (users.length === 0) {
      list.appendChild(el('li', 'empty', channel.complete ? 'Nobody here yet.' : 'No list in count mode: load a page.'));
      return;
    }
    var hidden = Math.max(0, users.length - MAX_RENDERED);
    users.slice(0, MAX_RENDERED).forEach(function (u) {
      var status = typeof u.state.status === 'string' ? u.state.status : 'available';
      var li = el('li', 'member' + (u.userId === me ? ' me' : ''));
      li.setAttribute('data-user', u.userId);
      li.setAttribute('data-status', status);

      var avatar = avatarFor(u.userId);
      avatar.appendChild(el('span', 'presence ' + status));
      li.appendChild(avatar);

      var whoBox = el('div', 'who');
      var name = el('div', 'name');
      name.appendChild(el('span', 'user-id', u.userId));
      if (u.userId === me) name.appendChild(el('span', 'you', 'you'));
      name.appendChild(el('span', 'status-label ' + status, status));
      whoBox.appendChild(name);
      if (typeof u.state.note === 'string' && u.state.note) whoBox.appendChild(el('div', 'note', u.state.note));
      var extra = Object.keys(u.state).filter(function (k) {
        return k !== 'status' && k !== 'note';
      });
      if (extra.length) {
        var tags = el('div', 'tags');
        extra.forEach(function (k) {
          tags.appendChild(el('span', 'tag', k + ': ' + JSON.stringify(u.state[k])));
        });
        whoBox.appendChild(tags);
      }
      li.appendChild(whoBox);

      var conns = el('div', 'conns');
      conns.appendChild(document.createTextNode(u.connections.length === 1 ? '1 connection' : u.connections.length + ' connections'));
      u.connections.forEach(function (c) {
        var id = el('span', 'mono', short(c.connId) + ' · e' + c.epoch);
        id.title = c.connId;
        conns.appendChild(id);
      });
      li.appendChild(conns);
      list.appendChild(li);
    });
    if (hidden > 0) list.appendChild(el('li', 'empty more', '… and ' + hidden + ' more listed'));
  }

  // --- big room -------------------------------------------------------------------------

  function updateBigRoom() {
    var ch = channel;
    var joined = ch && ch.status === 'joined';
    $('big-count').textContent = joined ? ch.count.members + ' people · ' + ch.count.connections + ' conn' : '–';
    $('big-listed').textContent = joined ? ch.members.size + (ch.complete ? ' (all)' : ' of ' + ch.count.connections) : '–';
    $('big-mode').textContent = ch ? ch.eventsMode : '–';
    els.paging.hidden = !joined || ch.complete;
    if (joined && !ch.complete) {
      els.pagingText.textContent =
        'Listing ' + ch.members.size + ' of ' + ch.count.connections + ' connections' + (ch.eventsMode === 'count' ? ' (a picture: count mode gets no events)' : ' (kept live by events)');
    }
  }

  els.loadMore.addEventListener('click', loadNextPage);

  function loadNextPage() {
    var ch = channel;
    if (!ch || ch.status !== 'joined') return;
    els.loadMore.disabled = true;
    ch.loadMore().then(
      function (page) {
        els.loadMore.disabled = false;
        if (page && ch === channel) {
          log('sync', 'presence:members page: ' + page.connections.length + ' connection(s) at seq ' + page.seq + (page.next ? '' : ', the last'));
        }
      },
      function (err) {
        els.loadMore.disabled = false;
        if (ch === channel) log('error', 'presence:members: ' + describe(err));
      },
    );
  }

  els.botsForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    setBots(Math.max(0, Math.min(500, Math.floor(Number(els.botCount.value) || 0))));
  });
  els.botsRemove.addEventListener('click', function () {
    setBots(0);
  });

  /** setBots asks the demo server for `count` bots in this room (it joins them to RTM_SERVER_URL). */
  function setBots(count) {
    if (!channel) return;
    var roomId = channel.roomId;
    els.botsSet.disabled = true;
    els.botsRemove.disabled = true;
    log('conn', 'asking the demo server for ' + count + ' bot(s) in ' + q(roomId));
    fetch('/api/bots', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ room: roomId, count: count }) })
      .then(function (r) {
        return r.json().then(function (body) {
          return { status: r.status, body: body };
        });
      })
      .then(function (res) {
        var b = res.body || {};
        if (typeof b.bots === 'number') $('big-bots').textContent = String(b.bots);
        if (res.status === 200) log('conn', b.bots + ' bot(s) in ' + q(roomId) + ' (on ' + b.server + ')');
        else log('error', 'bots: ' + (b.message || 'HTTP ' + res.status));
      })
      .catch(function (err) {
        log('error', 'bots: ' + err.message);
      })
      .then(function () {
        var active = channel !== null;
        els.botsSet.disabled = !active;
        els.botsRemove.disabled = !active;
      });
  }

  function updateFacts() {
    var ch = channel;
    $('fact-status').textContent = ch ? ch.status : 'idle';
    $('fact-conn').textContent = ch && ch.connId ? ch.connId : '–';
    $('fact-epoch').textContent = ch && ch.connId ? String(ch.epoch) : '–';
    $('fact-seq').textContent = ch && ch.connId ? String(ch.seq) : '–';
    $('fact-missed').textContent = ch && ch.connId ? String(ch.missedHeartbeats) : '–';
  }
  setInterval(updateFacts, 1000);

  // --- chat -----------------------------------------------------------------------------

  els.chatForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = els.chatText.value;
    if (!client || !text.trim()) return;
    els.chatText.value = '';
    client.emit('chat:message', { text: text }, { timeoutMs: 5000 }).then(
      function (ack) {
        log('chat', 'sent message ' + short(ack.id));
      },
      function (err) {
        els.chatText.value = text;
        log('error', 'chat:message: ' + describe(err));
      },
    );
  });

  function addMessage(m) {
    var empty = els.messages.querySelector('.empty');
    if (empty) empty.remove();
    var mine = channel && m.connId === channel.connId;
    var li = el('li', 'message' + (mine ? ' mine' : ''));
    li.setAttribute('data-user', m.userId);
    li.appendChild(avatarFor(m.userId));
    var bubble = el('div', 'bubble');
    bubble.appendChild(el('div', 'meta', (mine ? 'you' : m.userId) + ' · ' + clock(m.ts)));
    bubble.appendChild(el('div', 'text', m.text));
    li.appendChild(bubble);
    els.messages.appendChild(li);
    els.messages.scrollTop = els.messages.scrollHeight;
    log('chat', m.userId + ': ' + truncate(m.text, 60));
  }

  // --- topics ---------------------------------------------------------------------------

  els.topicForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var name = els.topic.value.trim();
    if (!name) return;
    subscribeTopic(name);
  });
  els.topic.addEventListener('input', renderCurl);
  els.server.addEventListener('input', renderCurl);
  els.publishData.addEventListener('input', renderCurl);

  function topicNames() {
    return Object.keys(topics);
  }

  /** The topic the backend box publishes to: the one typed, else the last subscribed. */
  function publishTopic() {
    var names = topicNames();
    return els.topic.value.trim() || names[names.length - 1] || 'scores';
  }

  function subscribeTopic(name) {
    var c = client;
    if (!c || topics[name]) return;
    topics[name] = { sub: null, state: 'subscribing' };
    renderTopics();
    c.topics
      .subscribe(name, function (data, m) {
        if (c === client) addTopicMessage(m);
      })
      .then(
        function (sub) {
          if (c !== client) return;
          topics[name] = { sub: sub, state: 'subscribed' };
          log('topic', 'subscribed to ' + q(name));
          els.topic.value = '';
          renderTopics();
          saveSession(true);
        },
        function (err) {
          if (c !== client) return;
          delete topics[name];
          log('error', 'subscribe ' + q(name) + ': ' + describe(err));
          renderTopics();
        },
      );
  }

  function unsubscribeTopic(name) {
    var t = topics[name];
    if (!t || !t.sub) return;
    delete topics[name];
    renderTopics();
    saveSession(true);
    t.sub.unsubscribe().then(function () {
      log('topic', 'unsubscribed from ' + q(name));
    });
  }

  function renderTopics() {
    els.topicList.textContent = '';
    topicNames().forEach(function (name) {
      var li = el('li', 'chip');
      li.setAttribute('data-topic', name);
      li.setAttribute('data-state', topics[name].state);
      li.appendChild(el('span', 'name', name));
      var x = el('button', null, '×');
      x.type = 'button';
      x.title = 'Unsubscribe';
      x.setAttribute('aria-label', 'Unsubscribe from ' + name);
      x.addEventListener('click', function () {
        unsubscribeTopic(name);
      });
      li.appendChild(x);
      els.topicList.appendChild(li);
    });
    renderCurl();
  }

  function addTopicMessage(m) {
    var empty = els.topicMessages.querySelector('.empty');
    if (empty) empty.remove();
    var li = el('li', 'topic-message');
    li.setAttribute('data-topic', m.topic);
    li.appendChild(el('span', 'topic-name', m.topic));
    li.appendChild(el('code', null, truncate(JSON.stringify(m.data), 200)));
    li.appendChild(el('time', null, clock(m.ts)));
    els.topicMessages.appendChild(li);
    while (els.topicMessages.children.length > 100) els.topicMessages.removeChild(els.topicMessages.firstChild);
    els.topicMessages.scrollTop = els.topicMessages.scrollHeight;
    log('topic', m.topic + ': ' + truncate(JSON.stringify(m.data), 60));
  }

  // --- a backend: publish and emit --------------------------------------------------------

  /** The demo server (demo/server.mjs) plays the app's backend: it holds the API token. */
  var backend = { server: null, apiToken: false };
  fetch('/api/config')
    .then(function (r) {
      return r.ok ? r.json() : null;
    })
    .then(function (cfg) {
      if (cfg) backend = cfg;
      renderCurl();
    })
    .catch(function () {
      renderCurl();
    });

  function publishBody() {
    var raw = els.publishData.value.trim() || 'null';
    try {
      return JSON.stringify({ data: JSON.parse(raw) });
    } catch (e) {
      return '{"data":' + raw + '}';
    }
  }

  function shellQuote(s) {
    return "'" + s.replace(/'/g, "'\\''") + "'";
  }

  function renderCurl() {
    var server = (els.server.value.trim() || 'http://localhost:3000').replace(/\/+$/, '');
    els.publishCurl.textContent =
      'curl -X POST ' + shellQuote(server + '/v1/topics/' + encodeURIComponent(publishTopic()) + '/publish') + ' \\\n' +
      '  -H "Authorization: Bearer $API_TOKEN" \\\n' +
      "  -H 'Content-Type: application/json' \\\n" +
      '  -d ' + shellQuote(publishBody());
    els.backendNote.textContent = backend.server
      ? 'The button asks the demo server to make this call: it sends it to ' + backend.server +
        (backend.apiToken ? ' with the API token it was started with (the page never sees it).' : ' without a token (start it with API_TOKEN=… when the server has one).')
      : 'The demo server is not reachable for backend calls.';
  }

  function backendCall(path, body, what) {
    return fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (r) {
        return r.json().catch(function () {
          return { status: r.status, body: {} };
        });
      })
      .then(function (res) {
        var ok = res.status === 200;
        log(ok ? 'event' : 'error', what + ' → HTTP ' + res.status + (ok ? '' : ' ' + ((res.body && res.body.message) || '')));
      })
      .catch(function (err) {
        log('error', what + ': ' + describe(err));
      });
  }

  els.publishForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var data;
    try {
      data = JSON.parse(els.publishData.value.trim() || 'null');
    } catch (e) {
      log('error', 'the data is not valid JSON: ' + e.message);
      return;
    }
    var topic = publishTopic();
    backendCall('/api/publish', { topic: topic, data: data }, 'backend publish to ' + q(topic));
  });

  els.emitSelf.addEventListener('click', function () {
    // client.id is the socket's id on the server: what a backend needs to reach this tab.
    if (!client || !client.id) {
      log('error', 'not connected');
      return;
    }
    backendCall('/api/emit', { socketId: client.id, event: 'demo:notice', data: { text: 'hello, socket ' + short(client.id) } }, 'backend emit to socket ' + short(client.id));
  });

  renderCurl();

  // --- log ------------------------------------------------------------------------------

  $('clear-log').addEventListener('click', function () {
    els.log.textContent = '';
  });

  function log(kind, text) {
    var li = el('li');
    li.setAttribute('data-kind', kind);
    li.appendChild(el('time', null, clock(Date.now())));
    li.appendChild(el('span', 'kind ' + kind, kind));
    li.appendChild(el('span', 'text', text));
    var atBottom = els.log.scrollHeight - els.log.scrollTop - els.log.clientHeight < 40;
    els.log.appendChild(li);
    while (els.log.children.length > 500) els.log.removeChild(els.log.firstChild);
    if (atBottom) els.log.scrollTop = els.log.scrollHeight;
  }

  // --- helpers --------------------------------------------------------------------------

  function setConn(status, label) {
    els.conn.setAttribute('data-status', status);
    els.conn.querySelector('.label').textContent = label;
  }

  function transportName(c) {
    var engine = c.socket.io && c.socket.io.engine;
    var name = engine && engine.transport && engine.transport.name;
    return name === 'websocket' ? 'WebSocket' : name === 'polling' ? 'polling' : 'socket';
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  var PALETTE = ['#6366f1', '#0ea5e9', '#14b8a6', '#f59e0b', '#ec4899', '#8b5cf6', '#10b981', '#f97316', '#3b82f6', '#e11d48'];

  function avatarFor(userId) {
    var hash = 0;
    for (var i = 0; i < userId.length; i++) hash = (hash * 31 + userId.charCodeAt(i)) | 0;
    var node = el('span', 'avatar', initials(userId));
    node.style.background = PALETTE[Math.abs(hash) % PALETTE.length];
    return node;
  }

  function initials(userId) {
    var parts = userId.split(/[^\p{L}\p{N}]+/u).filter(Boolean);
    var chars = parts.length > 1 ? [parts[0], parts[1]] : [userId];
    return chars
      .map(function (p) {
        return Array.from(p)[0] || '';
      })
      .join('')
      .slice(0, 2) || '?';
  }

  function who(e) {
    return e.userId + ' [' + short(e.connId) + ']';
  }

  function stateText(state) {
    return state && Object.keys(state).length ? ' ' + truncate(JSON.stringify(state), 80) : '';
  }

  function seqText(e) {
    return '  #' + e.seq;
  }

  function short(id) {
    return id ? String(id).slice(0, 6) : '–';
  }

  function q(s) {
    return '"' + s + '"';
  }

  function truncate(s, n) {
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  function clock(ms) {
    var d = new Date(ms);
    return d.toTimeString().slice(0, 8);
  }

  function describe(err) {
    if (!err) return 'unknown error';
    return (err.code ? '[' + err.code + '] ' : '') + (err.message || String(err));
  }

  renderOwnState();
  // Back in the room after a reload (the SDK resumes the same connection).
  if (params.get('autojoin') === '1' || session.joined === true) start();
})();
