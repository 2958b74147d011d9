// Client-side search over class names and indices; PAGES is defined in index.html.
function matches(p, q) {
  if (!q) return true;
  q = q.trim().toLowerCase();
  if (/^[0-9]+$/.test(q)) return String(p.class_index) === q;
  return p.class_name.toLowerCase().indexOf(q) >= 0;
}
function render(q) {
  var list = document.getElementById('results');
  list.innerHTML = '';
  var shown = 0;
  PAGES.forEach(function (p) {
    if (!matches(p, q)) return;
    var li = document.createElement('li');
    var a = document.createElement('a');
    a.href = p.href;
    a.textContent = p.class_name + ' (' + p.class_index + ') ' + p.kind + ' ' + p.key;
    li.appendChild(a);
    var s = document.createElement('span');
    s.className = p.label === 'spurious' ? 'spurious' : (p.label === 'core' ? 'core' : 'muted');
    s.textContent = ' ' + p.label;
    li.appendChild(s);
    list.appendChild(li);
    shown += 1;
  });
  document.getElementById('count').textContent = shown + ' of ' + PAGES.length + ' pages';
}
window.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('q');
  var q = new URLSearchParams(window.location.search).get('q') || '';
  box.value = q;
  box.addEventListener('input', function () { render(box.value); });
  render(q);
});
