document.getElementById("dl").addEventListener("click", function () {
  var f = document.getElementById("answer"), d = f.dataset;
  var main = f.querySelector("input[name=main]:checked"), conf = f.querySelector("input[name=confidence]:checked");
  var worker = f.elements.worker.value.trim(), reasons = f.elements.reasons.value.trim();
  if (!main || !conf || !worker || !reasons) { alert("Please answer Q1-Q3 and give your worker id."); return; }
  function q(s) { s = String(s); return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
  var head = "WorkerId,Input.wordnet_id,Input.class_index,Input.feature_index,Input.feature_rank," +
    "Answer.main,Answer.confidence,Answer.reasons";
  var row = [worker, d.wnid, d.cls, d.feature, d.rank, main.value, conf.value, reasons].map(q).join(",");
  var a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([head + "\n" + row + "\n"], {type: "text/csv"}));
  a.download = d.stem + "_" + worker.replace(/[^A-Za-z0-9_-]/g, "_") + ".csv";
  document.body.appendChild(a); a.click(); a.remove();
});
