// flowline dashboard: live updates over Server-Sent Events. The pages work
// without this script; with it, the part of the page inside #live is
// replaced whenever the server sends a new rendering of it.
(function () {
  'use strict';
  var live = document.getElementById('live');
  var status = document.getElementById('live-status');
  var problem = document.getElementById('live-problem');
  if (!live || !live.dataset.live || !window.EventSource) {
    return;
  }
  // The details a person opened or closed stay so across updates.
  var userOpen = {};
  live.addEventListener('toggle', function (e) {
    if (e.target.id) {
      userOpen[e.target.id] = e.target.open;
    }
  }, true);

  function setStatus(on, text) {
    status.hidden = false;
    status.dataset.on = on ? '1' : '0';
    status.textContent = text;
  }
  var updates = 0;
  var es = new EventSource(live.dataset.live);
  es.addEventListener('open', function () { setStatus(true, 'live'); });
  es.addEventListener('update', function (e) {
    updates++;
    live.innerHTML = e.data;
    Object.keys(userOpen).forEach(function (id) {
      var d = document.getElementById(id);
      if (d) { d.open = userOpen[id]; }
    });
    problem.hidden = true;
    document.body.dataset.updates = String(updates);
    setStatus(true, 'live · updated ' + new Date().toLocaleTimeString());
  });
  es.addEventListener('problem', function (e) {
    problem.textContent = e.data;
    problem.hidden = false;
  });
  es.addEventListener('gone', function (e) {
    es.close();
    problem.textContent = e.data;
    problem.hidden = false;
    setStatus(false, 'stopped');
  });
  es.addEventListener('error', function () {
    if (es.readyState !== EventSource.CLOSED) {
      setStatus(false, 'reconnecting…');
    }
  });
})();
