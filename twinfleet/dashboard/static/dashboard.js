// twinfleet dashboard: draws every <canvas data-chart> with Chart.js, also after htmx swaps.
// Charts are drawn without animation, so a screenshot or a test sees the final picture at once.
(function () {
  "use strict";
  var palette = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#65a30d", "#db2777"];

  function config(spec) {
    var common = {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { display: spec.type === "line" } }
    };
    if (spec.type === "line") {
      var names = Object.keys(spec.series || {});
      return {
        type: "line",
        data: {
          labels: spec.labels,
          datasets: names.map(function (name, i) {
            return { label: name, data: spec.series[name], borderColor: palette[i % palette.length],
                     backgroundColor: palette[i % palette.length], tension: 0, pointRadius: 2 };
          })
        },
        options: Object.assign(common, { scales: { y: { min: 0, max: 100, title: { display: true, text: "% finished" } } } })
      };
    }
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [{ label: spec.label, data: spec.values,
                     backgroundColor: spec.labels.map(function (_, i) { return palette[i % palette.length]; }) }]
      },
      options: Object.assign(common, { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } })
    };
  }

  function draw(root) {
    if (typeof Chart === "undefined") { return; }
    var canvases = root.querySelectorAll ? root.querySelectorAll("canvas[data-chart]") : [];
    Array.prototype.forEach.call(canvases, function (canvas) {
      var existing = Chart.getChart(canvas);
      if (existing) { existing.destroy(); }
      try {
        new Chart(canvas, config(JSON.parse(canvas.getAttribute("data-chart"))));
        canvas.setAttribute("data-drawn", "true");
      } catch (err) {
        canvas.setAttribute("data-drawn", "error");
        if (window.console) { console.error("chart not drawn", err); }
      }
    });
  }

  function destroyIn(root) {
    if (typeof Chart === "undefined" || !root.querySelectorAll) { return; }
    Array.prototype.forEach.call(root.querySelectorAll("canvas[data-chart]"), function (canvas) {
      var chart = Chart.getChart(canvas);
      if (chart) { chart.destroy(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:beforeSwap", function (event) { destroyIn(event.detail.target); });
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.detail.target); });
})();
