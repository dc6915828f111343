// app.js -- a tiny single-page app: links change the view with
// history.pushState, Back/Forward with popstate, the tabs of the reports view
// only the query (history.replaceState, the same path: no new page view).
// Every route is also a real file (build.mk copies this page), so a reload works.
(function () {
  var views = {
    '/demo/app/': ['Dashboard', 'Views of an app change with history.pushState; each is one page view.'],
    '/demo/app/reports/': ['Reports', 'Switching tabs here changes only the query string with history.replaceState: the same path, so no new page view.'],
    '/demo/app/settings/': ['Settings', 'Back and Forward (popstate) count as page views too.'],
  };
  function render() {
    var v = views[location.pathname] || views['/demo/app/'];
    var html = '<h1>' + v[0] + '</h1><p>' + v[1] + '</p>';
    if (location.pathname === '/demo/app/reports/') {
      var tab = new URLSearchParams(location.search).get('tab') || 'week';
      html += '<p role="group" aria-label="Period">' + ['week', 'month'].map(function (t) {
        return '<button class="btn" type="button" data-tab="' + t + '" aria-pressed="' + (t === tab) + '">' + t + '</button>';
      }).join(' ') + '</p>';
    }
    document.getElementById('view').innerHTML = html;
    document.title = v[0] + ' · Fairstat demo';
    document.querySelectorAll('#app-nav a').forEach(function (a) {
      if (a.pathname === location.pathname) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
  }
  document.getElementById('app-nav').addEventListener('click', function (e) {
    var a = e.target.closest('a');
    if (!a || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    if (a.pathname !== location.pathname) history.pushState({}, '', a.href);
    render();
  });
  document.getElementById('view').addEventListener('click', function (e) {
    var tab = e.target.getAttribute && e.target.getAttribute('data-tab');
    if (!tab) return;
    history.replaceState({}, '', '?tab=' + tab);
    render();
  });
  window.addEventListener('popstate', render);
  render();
})();
