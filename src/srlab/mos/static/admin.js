// The administrator's page: progress and export through the admin API (the token stays in this page's memory).
"use strict";

const $ = (id) => document.getElementById(id);
let token = null;

async function admin(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, credentials: "omit" });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || response.statusText);
  return data;
}

function fail(error) {
  $("error").textContent = error.message;
  $("error").hidden = false;
}

async function showProgress() {
  const data = await admin("/api/admin/progress");
  $("error").hidden = true;
  $("summary").textContent = `${data.raters.length} raters, ${data.complete} finished, ${data.ratings} ratings`;
  const rows = data.raters.map((r) => {
    const row = document.createElement("tr");
    for (const value of [r.rater, new Date(r.started * 1000).toISOString().slice(0, 19), r.done, r.total]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    return row;
  });
  $("raters").tBodies[0].replaceChildren(...rows);
  $("progress").hidden = false;
}

async function download() {
  const data = await admin("/api/admin/export");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  link.download = "ratings.json";
  link.click();
  URL.revokeObjectURL(link.href);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  showProgress().catch(fail);
});
$("export").addEventListener("click", () => download().catch(fail));
