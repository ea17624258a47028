// The form engine's progressive enhancement (every form works without it):
// sections as tabs, display conditions applied while typing (the server checks
// them again), subform entries added and removed.
(function () {
  "use strict";
  if (window.cpimsFormsLoaded) { return; }
  window.cpimsFormsLoaded = true;

  function each(list, fn) { Array.prototype.forEach.call(list, fn); }

  // --- display conditions -----------------------------------------------------------
  // The wrapper of each field carries data-field="key" and, if it has one,
  // data-condition='{"field": ..., "operator": ..., "value": ...}'. Conditions name a
  // field of the same scope: the top of the form, or the same subform entry.

  function scopeOf(wrapper) {
    return wrapper.parentElement.closest("[data-row]") || wrapper.closest("[data-form-engine]");
  }

  function fieldsIn(scope) {
    var found = [];
    each(scope.querySelectorAll("[data-field]"), function (wrapper) {
      if (scopeOf(wrapper) === scope) { found.push(wrapper); }
    });
    return found;
  }

  function valuesOf(wrapper) {
    if (wrapper.hidden) { return []; } // hidden by its own condition: counts as empty
    var values = [];
    each(wrapper.querySelectorAll("input, select, textarea"), function (el) {
      if (el.closest("[data-field]") !== wrapper || el.type === "hidden" || el.type === "file") { return; }
      if (wrapper.classList.contains("field-date") && /_approximate$/.test(el.name)) { return; }
      if (el.type === "checkbox" || el.type === "radio") {
        if (el.checked && el.value !== "") { values.push(el.value); }
      } else if (el.value !== "") {
        values.push(el.value.trim());
      }
    });
    return values;
  }

  function met(condition, values) {
    var operator = condition.operator || "equals";
    var expected = condition.value;
    if (operator === "is_set") { return values.length > 0; }
    if (operator === "is_true") { return values.indexOf("true") !== -1; }
    var wanted = Array.isArray(expected) ? expected : [expected];
    var any = wanted.some(function (item) {
      if (item === false) { return values.indexOf("true") === -1; }
      if (item === true) { return values.indexOf("true") !== -1; }
      return values.indexOf(String(item)) !== -1;
    });
    return operator === "not_equals" ? !any : any;
  }

  function applyConditions(scope) {
    var wrappers = fieldsIn(scope);
    var byKey = {};
    wrappers.forEach(function (w) { byKey[w.getAttribute("data-field")] = w; });
    // Repeat so chains of conditions settle (a field hidden by its condition counts as empty).
    for (var pass = 0; pass <= wrappers.length; pass += 1) {
      var changed = false;
      wrappers.forEach(function (wrapper) {
        var raw = wrapper.getAttribute("data-condition");
        if (!raw) { return; }
        var condition;
        try { condition = JSON.parse(raw); } catch (e) { return; }
        var controller = byKey[condition.field];
        var show = met(condition, controller ? valuesOf(controller) : []);
        if (wrapper.hidden === show) { wrapper.hidden = !show; changed = true; }
      });
      if (!changed) { break; }
    }
  }

  function applyAll(root) {
    applyConditions(root);
    each(root.querySelectorAll("[data-row]"), applyConditions);
  }

  // --- subform entries -----------------------------------------------------------------

  function addRow(subform) {
    var template = subform.querySelector("template[data-row-template]");
    var rows = subform.querySelector("[data-rows]");
    if (!template || !rows) { return; }
    var index = parseInt(subform.getAttribute("data-next-index"), 10) || rows.children.length;
    subform.setAttribute("data-next-index", String(index + 1));
    var holder = document.createElement("div");
    holder.innerHTML = template.innerHTML.replace(/__INDEX__/g, String(index));
    var row = holder.firstElementChild;
    rows.appendChild(row);
    applyConditions(row);
    var first = row.querySelector("input:not([type=hidden]), select, textarea");
    if (first) { first.focus(); }
  }

  // --- sections as tabs ------------------------------------------------------------------

  function setUpTabs(root) {
    var nav = root.querySelector("[data-form-tabs]");
    var sections = root.querySelectorAll("[data-section]");
    if (!nav || sections.length < 2) { return; }
    var links = nav.querySelectorAll("[data-tab]");
    var rtl = document.documentElement.getAttribute("dir") === "rtl";
    nav.querySelector("ol").setAttribute("role", "tablist");
    root.classList.add("is-tabbed");

    function show(id, focus) {
      each(links, function (link) {
        var selected = link.getAttribute("data-tab") === id;
        link.setAttribute("aria-selected", selected ? "true" : "false");
        link.setAttribute("tabindex", selected ? "0" : "-1");
        if (selected && focus) { link.focus(); }
      });
      each(sections, function (section) { section.hidden = section.id !== id; });
    }

    each(links, function (link, index) {
      link.setAttribute("role", "tab");
      link.setAttribute("aria-controls", link.getAttribute("data-tab"));
      link.parentElement.setAttribute("role", "presentation");
      link.addEventListener("click", function (event) {
        event.preventDefault();
        show(link.getAttribute("data-tab"), false);
      });
      link.addEventListener("keydown", function (event) {
        var step = { ArrowRight: rtl ? -1 : 1, ArrowLeft: rtl ? 1 : -1, Home: -links.length, End: links.length }[event.key];
        if (step === undefined) { return; }
        event.preventDefault();
        var target = Math.max(0, Math.min(links.length - 1, index + step));
        show(links[target].getAttribute("data-tab"), true);
      });
    });
    each(sections, function (section) {
      section.setAttribute("role", "tabpanel");
      section.setAttribute("aria-labelledby", "tab-" + section.id.replace(/^section-/, ""));
    });

    var start = sections[0].id;
    var withError = root.querySelector("[data-section] .has-error");
    var hashed = window.location.hash && root.querySelector(window.location.hash.replace(/[^#\w-]/g, ""));
    if (withError) {
      start = withError.closest("[data-section]").id;
    } else if (hashed && hashed.matches("[data-section]")) {
      start = hashed.id;
    }
    show(start, false);

    // Links of the error summary open the section that holds the field.
    each(root.querySelectorAll("[data-error-summary] a"), function (link) {
      link.addEventListener("click", function () {
        var target = document.getElementById(link.getAttribute("href").slice(1));
        var section = target && target.closest("[data-section]");
        if (section) { show(section.id, false); }
      });
    });
  }

  // --- wiring --------------------------------------------------------------------------------

  each(document.querySelectorAll("[data-form-engine]"), function (root) {
    setUpTabs(root);
    applyAll(root);
    root.addEventListener("change", function (event) {
      var row = event.target.closest("[data-row]");
      applyConditions(row ? row : root);
    });
    root.addEventListener("input", function (event) {
      var row = event.target.closest("[data-row]");
      applyConditions(row ? row : root);
    });
    root.addEventListener("click", function (event) {
      var add = event.target.closest("[data-add-row]");
      if (add) {
        event.preventDefault();
        addRow(add.closest("[data-subform]"));
        return;
      }
      var remove = event.target.closest("[data-remove-row]");
      if (remove) {
        event.preventDefault();
        var row = remove.closest("[data-row]");
        var subform = row.closest("[data-subform]");
        row.parentElement.removeChild(row);
        var button = subform && subform.querySelector("[data-add-row]");
        if (button) { button.focus(); }
      }
    });
    var summary = root.querySelector("[data-error-summary]");
    if (summary) { summary.focus(); }
  });
})();
