const sel = document.getElementById('pid'); Object.keys(PLAN).forEach(p => { const o = document.createElement('option'); o.text = p; sel.add(o); });
function render() {
  const items = PLAN[sel.value]; const div = document.getElementById('items'); div.innerHTML = '';
  items.forEach((it, i) => {
    let h = `<div class="item"><p>Model ${i + 1}</p><img src="data:image/png;base64,${IMG[it.stimulus]}">`;
    h += '<p>How likely are you to recommend this model for deployment?</p>';
    LIKERT.forEach((l, k) => { h += `<label><input type="radio" name="q${i}" value="${k + 1}"> ${k + 1} ${l}</label> `; });
    h += `<p>Rationale:<br><textarea id="r${i}" rows="2"></textarea></p></div>`; div.innerHTML += h; });
}
function save() {
  const items = PLAN[sel.value]; let csv = 'participant,group,condition,method,likert,rationale\n';
  items.forEach((it, i) => { const c = document.querySelector(`input[name=q${i}]:checked`);
    const r = document.getElementById('r' + i).value.replace(/"/g, '""');
    csv += `${sel.value},${GROUP},${it.condition},${it.method},${c ? c.value : ''},"${r}"\n`; });
  const a = document.createElement('a'); a.href = URL.createObjectURL(new Blob([csv], {type: 'text/csv'}));
  a.download = `responses_${sel.value}.csv`; a.click();
}
