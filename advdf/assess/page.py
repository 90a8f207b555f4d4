"""The pages an evaluator sees (Jinja templates, autoescaped): instructions, a pair to rate, a set done, an error.

Plain HTML forms, so the page works without JavaScript and every rating is one request; a few lines of script only
stop a second tap from sending a rating twice and let keys 1-5 rate. The layout keeps the two images side by side
on a phone (each half the screen's width) and the five labels as large buttons under them. ``data-page`` on the body
names the view (``pair:<item>``, ``between:<sets done>``, ...), so a script can tell when the next page is there.
"""

from __future__ import annotations

# The five degradation categories of the DCR method (ITU-T P.910, ITU-R BT.500), best first.
DCR_LABELS = {5: "Imperceptible", 4: "Perceptible but not annoying", 3: "Slightly annoying", 2: "Annoying",
              1: "Very annoying"}

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>
 body { font: 17px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 12px; color: #111; }
 h1 { font-size: 1.35em; margin: .3em 0 .6em; }
 .pair { display: flex; gap: 2%; justify-content: center; margin: 10px 0; }
 .pair figure { margin: 0; width: 49%; max-width: {{ display_px }}px; text-align: center; }
 .pair img { width: 100%; height: auto; image-rendering: pixelated; background: #888; display: block; }
 .pair figcaption { font-size: .85em; color: #555; }
 .ratings { display: flex; flex-wrap: wrap; gap: 8px; justify-content: center; margin: 12px 0; }
 .ratings button { flex: 1 1 150px; min-height: 52px; font-size: 1em; border: 1px solid #777; border-radius: 8px;
                   background: #f4f4f4; cursor: pointer; }
 .ratings button:hover, .ratings button:focus { background: #dde8ff; }
 button.primary { min-height: 48px; padding: 0 22px; font-size: 1em; border-radius: 8px; }
 progress { width: 100%; height: 10px; }
 .muted { color: #555; font-size: .9em; }
 .code { font: 1.6em monospace; letter-spacing: .12em; background: #eef; padding: 4px 10px; }
 @media (max-width: 600px) { .ratings button { flex-basis: 100%; min-height: 46px; } body { padding: 8px; } }
</style></head><body data-page="{{ page_id }}">
{% block body %}{% endblock %}
</body></html>
"""

INSTRUCTIONS = """{% extends "base.html" %}{% block body %}
<h1>Image quality test</h1>
<p>Each screen shows two pictures of the same face side by side. Sometimes one of them has been altered, sometimes
the two are exactly the same. Compare them and rate how much degradation you notice:</p>
<ul>{% for score, label in labels %}<li><b>{{ score }}</b> — {{ label }}</li>{% endfor %}</ul>
<p>Give your first impression at a normal viewing distance, without zooming in. There are no right or wrong answers.
A set has {{ per_set }} pairs; you may rate up to {{ max_sets }} set{{ "s" if max_sets != 1 }}. A few pairs check
that you are paying attention. Your answers are anonymous; at the end you get a completion code.</p>
<form method="post" action="{{ url_for('start') }}"><button class="primary" id="start" type="submit">Start</button></form>
{% endblock %}"""

PAIR = """{% extends "base.html" %}{% block body %}
<div class="muted" id="progress">Set {{ s.set_number }} (at most {{ max_sets }}) · pair {{ s.position }} of {{ s.total }}</div>
<progress value="{{ s.position - 1 }}" max="{{ s.total }}"></progress>
<div class="pair">
 <figure><img id="left" alt="left picture" src="{{ url_for('image', token=token, item=s.item, side='left') }}"></figure>
 <figure><img id="right" alt="right picture" src="{{ url_for('image', token=token, item=s.item, side='right') }}"></figure>
</div>
<form method="post" action="{{ url_for('rate', token=token) }}" id="rate">
 <input type="hidden" name="item" value="{{ s.item }}">
 <div class="ratings">{% for score, label in labels %}
  <button type="submit" name="rating" value="{{ score }}" id="rate-{{ score }}">{{ score }} · {{ label }}</button>
 {% endfor %}</div>
</form>
<p class="muted">How much degradation do you see? Keys 1-5 work too.</p>
<script>
 var form = document.getElementById("rate"), sent = false;
 form.addEventListener("submit", function (e) {
   if (sent) { e.preventDefault(); return; }
   sent = true;  // the form's data (the pressed button's value included) is taken before the buttons go grey
   setTimeout(function () { form.querySelectorAll("button").forEach(function (b) { b.disabled = true; }); }, 0);
 });
 document.addEventListener("keydown", function (e) {
   var b = document.getElementById("rate-" + e.key); if (b && !sent) { b.click(); }
 });
</script>
{% endblock %}"""

BETWEEN = """{% extends "base.html" %}{% block body %}
<h1>Set done — thank you</h1>
<p>Your completion code: <span class="code" id="code">{{ s.code }}</span></p>
<p>You have rated {{ s.sets_done }} set{{ "s" if s.sets_done != 1 }}.</p>
{% if s.more %}
<form method="post" action="{{ url_for('next_set', token=token) }}" style="display:inline">
 <button class="primary" id="next" type="submit">Rate another set</button></form>
{% endif %}
<form method="post" action="{{ url_for('finish', token=token) }}" style="display:inline">
 <button class="primary" id="finish" type="submit">I am done</button></form>
{% endblock %}"""

FINISHED = """{% extends "base.html" %}{% block body %}
<h1>All done — thank you</h1>
<p>Your completion code: <span class="code" id="code">{{ s.code }}</span></p>
<p class="muted">You have rated {{ s.sets_done }} set{{ "s" if s.sets_done != 1 }}. You can close this page.</p>
{% endblock %}"""

ERROR = """{% extends "base.html" %}{% block body %}
<h1>Not accepted</h1>
<p id="error">{{ message }}</p>
{% if token %}<p><a href="{{ url_for('evaluator', token=token) }}">Back to your page</a></p>{% endif %}
{% endblock %}"""

# Named .html: Flask autoescapes templates by their extension.
TEMPLATES = {"base.html": BASE, "instructions.html": INSTRUCTIONS, "pair.html": PAIR, "between.html": BETWEEN,
             "finished.html": FINISHED, "error.html": ERROR}
