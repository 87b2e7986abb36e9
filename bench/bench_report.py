"""`loket report` on 100,000 cases (about a million events), beside plain SQL over the same rows.

For SQLite and PostgreSQL, same run, each measurement in a fresh child process (`--child`):

- floor 1, `GROUP BY`: three aggregate queries over the same rows (cases by type, unit and
  open/closed; events by action; escalations by rung) — what a report that needs no
  percentiles and no stays would cost;
- floor 2, `stream`: the three streamed queries the report made before the stays were kept
  as rows (cases by id, all their created and transition events by case and seq,
  escalations), every row fetched through the report's own reader (`engine.store.reports`:
  the DB-API cursor, instants as µs) and nothing computed — the least a report that pairs
  every state change with the next must do (see "Stays as rows" below);
- `run_report` text and `--json`, and `run_report --html` (its SVG charts and Graphviz
  included);
- `run_report --public` (the public results page), and the text report filtered to the last
  thirteen weeks and one request type (`--since`, `--until`, `--type`).

Each is run `--runs` times (default 3) and the fastest counts: on a shared machine the
slower runs measure its load. The modes take turns (a child of each, then the next turn), so
that floors and report meet the same spells of load. Time is around the call alone (opening the connection and
reading the definitions included, interpreter start-up and imports excluded), with its CPU
time beside it (the PostgreSQL server's not included). Memory is the child's peak resident
set during the call (VmHWM, reset just before it), shown whole and less the resident set
just before the call — the growth the report causes. (Not ru_maxrss: Linux carries it
across exec, so a child would report the parent's peak from making the rows.)

The rows are made by walking the bundled request types' state machines at random over a year
(dwell times drawn per state, partners slower, a case still open when its next step would
fall after "now"), with comments and `escalated` events on long stays, and escalation and
failed outbox rows to match. They are bulk-copied (see Loading below); hashes are
placeholders (the report does not read them). The same seed gives the same rows.

Where the text report's time goes (cProfile of `engine.app.report.gather`, 20,000 cases:
212,985 events of which 137,030 state changes, 41,588 escalations). On SQLite, before the
instants came as integers: a quarter reading the rows (`fetchmany`, and decoding about
140,000 instants into datetimes and back into POSIX seconds), a quarter the builder's pass
over the 117,727 stays (`_add_stays`: time per state and unit, the state deadline of each,
the week of a missed one), a third the cases (`add_case`, `_add_closed`: clocks, lead times
in calendar and working days, results, areas, weeks) and a tenth the escalations
(`add_escalation`). On PostgreSQL the same Python work, with the rows coming off a
server-side cursor; the server's own work is small beside it.

Now every instant the report streams (a case's five, a state change's, an escalation's) comes
as an integer, µs since the epoch, converted by the database (`engine.store.reports.micros`:
exact, a fraction never rounded), and the builder works in those integers; a datetime is
made only for the few cases the report shows, for a calendar lookup once per state and local
day, and for an instant in the last second of a local day or on a day the clocks change.
Same output, byte for byte. Client CPU of the text report at 20,000 cases, main → this,
same machine, runs alternated: SQLite about 1.7 → 1.55 s, PostgreSQL about 1.8 → 1.25 s
(the conversion moves to the server's process); at 100,000 SQLite 8.1 → 7.6 s, PostgreSQL
9.0 → 5.6 s.

Memory at a million cases (about 5.9 million stays): the builder keeps one number per stay
for the medians of time per state and per unit, and per closed case for the lead times. It
kept each stay twice (per state and per unit) and sorted each group into a list of Python
floats (32 bytes a value): 417 MB peak. Now each stay's days are kept once, per state of
each definition, sorted in place one array at a time, and a unit's median is read from its
states' sorted arrays together (`heapq.merge` up to the rank).

Figures of `--cases 1000000 --modes text --runs 1` (10,697,522 events, 2,095,366
escalations; loaded in 641 s on SQLite and 579 s by COPY on PostgreSQL, on a machine shared
with other work, so the seconds are long and the CPU seconds are the steadier figure),
main → this: SQLite floor 7.8–10.1 s CPU, report 77.6 → 70.4 s CPU, peak 417 → 234 MB;
PostgreSQL report 82.9 → 50.9 s CPU, peak 394 → 213 MB. The report's CPU grows linearly
with the cases (about 75–90 µs a case on SQLite at 20,000, 100,000 and 1,000,000).

What was tried and left out: the whole report computed by the database (grouped queries;
`LEAD` over each case's state changes for its stays; `ROW_NUMBER` windows for the medians;
each state deadline judged against a table of dues per rule and local day that Python
worked out once, joined as `VALUES`; local days from the organisation's UTC offsets as a
`CASE`). It gave the same output on this data set on both databases but took 2–4 times as
long as the row-by-row pass at 20,000 cases: on SQLite `LEAD` over the 137,030 state changes
alone costs about twice the whole `GROUP BY` floor, and the joins to the cases and the state
table, the dues join and the two window sorts each as much again (every expression is
evaluated per row, a CTE is recomputed per use unless materialised); on PostgreSQL the
planner misjudges the `VALUES` tables (merge joins with a join filter, sorts spilling to
disk), and the `EXTRACT(EPOCH ...)` arithmetic repeats in every sort key. A report exact to
the stay cannot come within 3× of a `GROUP BY` over the same rows while it must pair every
state change with the next: that needs the stays kept as rows of their own (start, end,
state, unit, due) when a case moves, so that the report is a few `GROUP BY`s and rank
lookups over one indexed table.

Stays as rows (schema 0009, `case_stay`; `engine.core.stays`): each stay that ends is written
with the transition that ends it (its state, unit, bounds, length in days and in µs, its
deadline as it stood and whether it was met); an open stay is the case's own row. The report
now counts the ended stays with `GROUP BY`s (per type, state and unit: how many and their µs,
summed exactly; deadlines per met; missed ones per local day), reads each median as a rank
off an index (`ORDER BY days LIMIT .. OFFSET ..`, per state and per unit, merged with the few
open stays), reads state changes only of the open cases and of the bestuurlijke dekking's,
and counts the escalations on the database too (per type, unit and rung; per local day, the
zone's offsets bound as a `CASE` over the clock changes). `--unit` keeps the full pass.
Same output as before on this data set at 20,000 cases, byte for byte, on both databases
(text, `--json`, `--html`, `--public`, a period with a type, `--unit`). The loader fills
`case_stay` from the rows it made, as migration 0009 does, and PostgreSQL gets it by COPY.

Figures at 20,000 cases (`--runs 3`, main → this, two rounds alternated on a machine shared
with other work, load average about 5 on 2 cores; CPU seconds are the steadier figure):
SQLite text report 1.24–1.73 → 0.86–0.87 s, 1.02–1.28 → 0.56–0.63 s CPU, 9.7–13.1 → 4.6–7.1×
its `GROUP BY` floor; PostgreSQL 1.90–2.53 → 1.00–1.05 s, 0.87–0.91 → 0.37–0.43 s CPU,
19.8–23.5 → 11.0–12.7×. At 100,000 cases (`--runs 2`, same conditions): SQLite 5.07 →
3.08 s CPU (5.2 → 5.0 s, 5.1 → 4.5×: the machine's load stretched this run's seconds well
past its CPU), PostgreSQL 10.4 → 4.2 s, 4.48 → 1.52 s CPU, 33 → 13×. The report's CPU stays
linear in the cases (about 30 µs a case on SQLite at 20,000 and 100,000, 37 µs at a million).
At 1,000,000 cases (`--cases 1000000 --modes group_by,text --runs 1 --skip-pg`, loaded in
711 s with `case_stay` filled from the rows; main → this on the same rows): SQLite report
54.5 → 38.0 s (54.2 → 37.5 s CPU), 5.8 → 3.4× its `GROUP BY` floor (9.5–11.3 s), peak
232 → 178 MB.

Where the rest went (cProfile, SQLite, 20,000 cases): about half the per-case pass
(`add_case`; `_add_closed` alone about 30%: working days per lead time, ISO weeks, results,
the realised), a quarter the queries (the cases stream and its JSON, the open cases' state
changes, the groups and the 25 rank lookups), 7% decoding the closed cases' field values.
cProfile charges every Python call, so it overstated the pass: timed without it (the report's
CPU less that of the same report with `add_case` a no-op) the pass was about 0.08 s of 0.55.

The per-case pass now unpacks each case once, looks a definition's states, outcomes, area
and measures up once per version, takes a closed case's local days from the per-day offset
table and its working days from the prefix sums in integers (only an instant in the last
second of a local day or on a day the clocks change takes the datetime way), keeps each
local day's ISO week counts, and counts the clocks and results inline; the closed cases'
field values are decoded by the JSON scanner directly. Same output, byte for byte, on this
data set on both databases (text, `--json`, `--html`, `--public`; all, `--since`, `--until`,
a period across both 2026 clock changes, one around ISO week 53, `--type`, `--unit`) and on
the demo's database. Figures at 20,000 cases (`--runs 3 --modes text`, main → this, two
rounds alternated, two test suites running on the machine): SQLite 0.59–0.63 → 0.51–0.53 s,
0.57–0.58 → 0.50–0.52 s CPU, 4.6–5.3 → 3.9–4.3× its `GROUP BY` floor; PostgreSQL 0.72–0.78
→ 0.63–0.64 s, 0.32–0.34 → 0.27 s CPU, 9.1–10.0 → 7.3–8.3×. The pass itself is now about
0.02 s: the report is its queries. Each timed alone on SQLite (CPU, best of four): the cases
stream 0.16 s (five instants a case converted to µs by SQLite, and the JSON), the
bestuurlijke dekking's events 0.09 s (a scan of every event for the administrators' ones),
the escalation counts 0.06 s and their local days about 0.05 s, the three stay groupings
0.07 s together, the open cases' state changes 0.04 s. The floor of 3× needs those queries
cheaper, not Python: the per-case results stored when a case closes (lead time in calendar
and working days, clocks met, the local weeks of receipt and close, outcome and area) so
that the cases too are `GROUP BY`s and ranks, and the administrators' events found by an
index instead of a scan. On PostgreSQL the floor runs in the server (0.01 s client CPU)
while the report's streamed cases and the rank lookups cost server time beside its client
CPU.

Fewer passes, and indexes where a scan was (schema 0010). Each query of the report timed
inside it at 20,000 cases (best of three, SQLite, main → this): the bestuurlijke dekking's
events 0.06 → 0.001 s, the missed deadlines per day 0.017 → 0.002 s, the ended stays' groups
and deadline counts 0.026 → 0.016 s, the escalations' span 0.006 → 0.0001 s, the cases
stream 0.069 → 0.060 s (query and rows; its SQL alone 0.056 → 0.046 s). On PostgreSQL the
dekking 0.05 → 0.002 s, the missed per day 0.013 → 0.002 s, the stays' two groupings 0.067 →
0.032 s, the cases stream 0.109 → 0.067 s. What each is:

- The bestuurlijke dekking's events were found by reading every event's JSON. Four partial
  indexes on `case_event` (`engine/store/indexes.py`) find each kind: escalations by whom
  they went to, instructions and missed ones (rung `directive`) by case, comments by writer,
  comments on someone's behalf by whose; only escalated, directed and comment events are
  entered, so writing any other event costs nothing more. The query is one select per kind,
  their ids together (`UNION`), because SQLite does not use a partial index for a term of an
  `OR` (it scanned); each select carries its index's condition as written there, with the
  JSON key as a constant in the statement (`JSONText`): SQLite matches an index on an
  expression only to the same expression, and with the path bound as a parameter it scanned
  again (0.096 s). Tried first and dropped: one partial index on `action IN ('escalated',
  'directed', 'comment')` — a third of this data set's events, each still read with its JSON:
  SQLite 0.048 → 0.038 s, PostgreSQL no gain (a bitmap heap scan of those 66,000 rows).
- The missed deadlines per local day (`missed_stay_days`) scanned and sorted every stay: a
  partial index `case_stay (due_on) WHERE met IS false` gives them in order.
- Without `--since`/`--until` the stays' groups (per type, state, unit: how many, their µs)
  and their deadline counts (per type, unit, met) count the same rows: one `GROUP BY` over the
  covering index gives both (`stay_counts`). With a period they differ (met counted where the
  stay ended, missed where its deadline passed) and stay two queries.
- The escalations' first and last instant for the zone's offsets: two lookups on the
  `fired_at` index (any type: a wider span only adds offsets the `CASE` does not need), where
  one query of both scanned. Tried and dropped: counts per type, unit and rung and per local
  day from one `GROUP BY` of all four — 0.09–0.11 s against 0.035 + 0.036 s for the two: the
  sort of the wider key costs more than the second scan.
- A closed case's instants are converted to µs only as far as the report uses them: its
  stay's start not at all; a service norm or lead time it met (compared on the stored values:
  SQLite's fixed-width text, every instant written with its six-digit fraction) comes as a
  mark later than any instant; one it missed as its instant only under a period (without one
  it counts whenever it was missed). The cases stream passes the driver's rows through, and
  rebuilds only those with field values (SQLite's flags stay 0 and 1). On PostgreSQL the
  field values come as JSONB's text and are decoded by the JSON scanner (the driver's loader
  calls `json.loads`, two Python frames a case dearer: standalone 0.10 → 0.067 s, of which the
  two-column stream of the rest is about 0.048 s). Measured and left out: a float path for
  PostgreSQL's `EXTRACT(EPOCH ...)` (numeric, about 0.42 µs an instant: 90 ms for the 212,985
  events' instants, against 17 ms by `date_part`, which returns float8). It gave the same
  integers on this data set, but `date_part` divides the µs by 10⁶ in floating point and the
  report multiplies back: the error bound, N·2⁻⁵², passes half a µs at N ≈ 2.25·10¹⁵ µs
  (about 2041), well inside the calendar's range (to 2200), so it is not exact there.
- PostgreSQL is VACUUMed after the bulk load (see Loading): without the visibility map the
  rank lookups' index-only scans read the table for every row (0.158 → 0.039 s at 20,000).

Why the cases stream took twice as long inside the report as alone on PostgreSQL: mostly the
JSONB field values (above; 0.10 s alone, of which 0.05 s the values), and the machine's load
— the report's Python and the server share two cores, and the wrapper timing each query
charges it the fetches (one `FETCH` of 2,000 rows per batch) whenever they come.

Where the time goes now (SQLite, 20,000 cases, 0.37 s): the per-case pass (`add_case` with
`with_moves`) about 0.10 s CPU, of which `_add_closed` 0.056 s; the cases stream 0.08 s
(its SQL 0.046 s: the columns themselves 0.033 s, a stream of ids alone 0.006 s); the
escalations' two groupings 0.035 + 0.04 s (each a sort of the 41,588 rows; joining the cases
for their type, or grouping per case first, costs the same or more); the open cases' state
changes 0.025 s; the stays' groups and ranks 0.03 s; `finish` 0.02 s. The 3× floor (0.33 s)
needs about 0.05 s more: micro-work on `_add_closed` might give a quarter of its 0.056 s; the
rest is the per-case results stored at close (below).

Figures, main → this, both on vacuumed PostgreSQL databases (`--modes group_by,text`; a
machine of 2 cores shared with other work, load average 2–4, so the seconds are long and
the CPU seconds are the steadier figure; each ratio is against its own run's floor):

- 20,000 cases (`--runs 5`, two rounds alternated): SQLite 0.50–0.53 → 0.37–0.39 s (the same in
  CPU seconds), 4.3–4.6 → 3.4× its `GROUP BY` floor (0.11–0.12 s); PostgreSQL 0.50–0.51 →
  0.34–0.39 s (0.25 → 0.20–0.23 s CPU), 8.5–9.7 → 6.1–6.2× (floor 0.05–0.06 s).
- 100,000 cases (`--runs 3`, two rounds alternated): SQLite 2.15–2.18 → 1.71–2.13 s (2.13–2.14
  → 1.67–1.71 s CPU), 3.0–3.4 → 2.3–2.6× its `GROUP BY` floor (0.64–0.91 s); PostgreSQL
  2.29–2.63 → 1.45–2.04 s (1.14–1.22 → 0.84–0.89 s CPU), 9.3–12.1 → 5.8–7.6× (floor
  0.19–0.35 s, all of it the server's).
- 1,000,000 cases (`--runs 1`, once each): SQLite 28.3 → 21.5 s (26.1 → 19.4 s CPU), 3.6 →
  3.4× (floors 7.9 and 6.4 s: against the same 7.9 s, 2.7×), peak 164 → 167 MB; PostgreSQL
  28.9 → 19.8 s (14.3 → 10.4 s CPU), 12.6 → 13.8× (floors 2.3 and 1.4 s: against 2.3 s,
  8.7×). Migration 0010 on this database: 15 s on SQLite, 6 s on PostgreSQL.

PostgreSQL stays far from 3×: its floor is the server's work alone (0.01 s of client CPU),
while the report's client CPU by itself (0.2 s at 20,000 cases) is three times that floor's
seconds. Within 3× there needs the per-case results stored when a case closes (lead time in
calendar and working days, clocks met, local weeks, outcome and area), so that the closed
cases too are `GROUP BY`s and ranks instead of a stream through Python — not started.

The per-case pass as one loop, and the collector paused. `ReportBuilder.add_cases` takes the
paired streams in one call: what every case needs of the builder is bound to locals once, a
type's tallies and clock lists once per type, a closed case is counted inline (no method call
per case; its local day of receipt is worked out once, for its week and its working days), a
case without state changes shares one empty tuple, and the case rows reach the builder as the
driver's tuples (a `CaseFacts` is made only of an open case, which the report may show).
`gather` pauses Python's cyclic garbage collector (`engine.app.report._collector_paused`): the
report makes no cycles of its own, yet a full collection, set off by the allocations, walked
every object of the interpreter and its libraries (about 0.015 s at 20,000 cases) to free
nothing of the report's; the cycles SQLAlchemy's statements leave, about 1,200 objects a
report, none per case, are collected once it runs again (peak memory unchanged). Same
output, byte for byte, on SQLite and PostgreSQL (`reportq_compare`: text, `--json`, `--html`,
`--public`; all, periods across both clock changes, around ISO week 53, `--type`, `--unit`).
Figures at 20,000 cases, main → this: the pass alone over rows read beforehand (best of ten)
0.100 → 0.075 s CPU; a fresh process's report (best of six) SQLite 0.375 → 0.322 s CPU,
PostgreSQL 0.226 → 0.187 s client CPU (0.38 → 0.35 s); `--runs 5 --modes group_by,text
--skip-pg`, four rounds alternated (the first two while other work loaded the machine):
SQLite 0.36–0.41 → 0.34–0.37 s (the same in CPU seconds), 2.6–3.2 → 2.3–2.9× its `GROUP BY`
floor (0.12–0.15 s). At 100,000 cases (`--runs 3`, two rounds): SQLite 1.61–1.87 → 1.48–1.78 s
(1.58–1.87 → 1.48–1.76 s CPU), 2.3–2.6 → 2.5–2.7× (floors 0.60–0.71 s, which is what moved
the ratio), peak 103 MB both. Measured and left out: a measure without a value skipping
`_decimal` (no difference above the noise). The rest is mostly the queries and their rows
(timed inside the report: the cases stream with its JSON about 0.08–0.09 s, the
escalations' two groupings 0.08 s, the stays' groups, ranks and the open cases' state
changes 0.07–0.09 s).

PostgreSQL at a million cases, where the report's seconds ran well past its CPU (24 s of
which 8 s client CPU): timed inside the report, the open cases' state changes took 4.1 s —
asked for the events whose case is open, the planner walked all 10.7 million in case order
and merged them with the 35,267 open cases (a named cursor is planned for its first rows; a
`LATERAL` lookup without an order in it is flattened into that same join). Now the cases are
picked first and each one's moves looked up by index (`LATERAL`, ordered within so that it
stays a lookup per case): 4.1 → 1.8 s. And the report's transaction runs without JIT
(`SET LOCAL jit = off`): its scans and groupings are costly enough at a million cases for
PostgreSQL to compile them, which cost more than it saved (about 2 s of 19 in one
comparison). Same output, byte for byte (the 24 outputs above, 20,000 and 100,000 cases).
`--cases 1000000 --runs 1 --modes group_by,text --skip-sqlite`, alternated twice, main →
this: 16.2–18.9 → 14.5–16.2 s (7.7–9.1 → 8.1–8.7 s client CPU), 9.0–10.7 → 7.5–8.3× its
floor (1.5–2.1 s, warm). At 20,000 and 100,000 cases the difference is within the noise
(100,000: 1.36–1.64 s both; 20,000: 0.37 → 0.41 s, 6.3 → 5.9×). The rest at a million
(timed inside the report): the cases stream 4.5 s, the ranks 1.0 s, the escalations' two
groupings 1.7 s. PostgreSQL stayed 6–10× its floor at every size: its floor is the
server's work alone, the report's client CPU by itself was several floors (next).

The closed cases counted by PostgreSQL (`engine/store/closed.py`). The floor is the
server's work alone, so on PostgreSQL the report could only come near it by leaving the
closed cases on the server too, and by keeping both cores busy. Now:

- The closed cases are not streamed. One pass over them (`GROUPING SETS`, each grouping
  hashed) counts the results and both terms per type, version, final state and area, the
  received and closed per local day, and the working days; the lead times come back sorted
  per type and area (`array_agg` in order; the ranks per type and of all are those runs merged
  in Python); the ten realised last by the index on `closed_at`. Each row's values are worked
  out once (two levels of subqueries kept apart with `OFFSET 0`; flattened, PostgreSQL worked
  the local seconds out again in every expression that used them). Local days come from the
  zone's offsets as a `CASE`, as for the escalations, and whole seconds from `date_part`
  (exact: a double's rounding never crosses a whole second below the year 2255; a third of
  `EXTRACT`'s cost); working days from the report's own prefix sums, bound as an array; a
  case with an instant in the last second of a local day is counted by the builder.
  `percentile_disc` was tried first: its three sorts of every lead time cost 1.5 s at a
  million, against 0.6 s for one sort per group and the merge here.
- The open cases are streamed with their state changes from the one that began the stay
  now (the dekking's cases' all): at a million, the 35,267 open cases' 517,198 state changes
  became 35,267 (their stays now began with the last one; the dekking's cases come on top).
- Three more connections adopt the report's snapshot (`SET TRANSACTION SNAPSHOT`) and run
  the grouped queries beside the stream, each in a thread of its own: the stays' and
  escalations' groupings and then the stays' rank lookups (asked for together before the
  figures are put together, where they were 25 round trips one after the other at the end),
  the closed cases' groupings, and their lead times. With `work_mem` 64 MB and
  `hash_mem_multiplier` 8 on those connections: with the defaults the planner, which cannot
  tell how few groups the computed keys give, sorted a million rows on disk for two of the
  groupings (3.4 s) instead of hashing them (2.4 s, 1,875 groups in 8 MB).
- Same output, byte for byte: the 36 outputs of `reportq_compare` (text, `--json`, `--html`,
  `--public` for all, a period across both 2026 clock changes, one around ISO week 53, since,
  until, `--type`, `--type` with a period, `--unit`, `--unit` with a period) at 20,000 and
  100,000 cases, main → this, and SQLite's the same as PostgreSQL's. The bench data holds no
  areas or measures; `tests/test_report_closed_on_db.py` holds the database's figures to the
  streamed ones on data that has them in every stored form, with last-second instants and
  both clock changes, and the fallback (a stored form the database could read otherwise
  streams the closed cases).

Where it stands (`--modes group_by,text --skip-sqlite`, main → this, alternated on a quiet
machine): 20,000 cases (`--runs 5`, two rounds) 0.38–0.40 → 0.21–0.24 s, 5.3–6.0 → 3.0–3.4×
its floor (0.07 s); 100,000 (`--runs 3`, two rounds) 1.42–1.44 → 0.66–0.67 s, 6.9–8.1 →
3.4–3.5× (floor 0.18–0.21 s); a million (`--runs 1`; before once, this twice) 17.3 → 7.7–8.0
s, 11.4 → 3.2–4.4× (floors 1.5–2.5 s: the floor itself varies most), peak 144 → 126 MB.
SQLite is unchanged (20,000 cases: 0.34–0.37 s, 2.8–3.0×). The machine is the limit now:
during a report at 20,000 cases the two cores were busy for 0.33 s of 0.20 s (100,000: 1.2 s
of 0.62 s), nearly all of it the server's. Within 3× at every size needs less work, not more
overlap: the closed cases' per-case results stored when they close (the local days, working
days and the area's and measures' values, computed once instead of per report), and the
escalations' local day stored when they fire. Tried and left out: both escalation groupings
in one pass (`GROUPING SETS` over the join: the same CPU, and no parallel scan), no
parallel workers on the lanes (no difference above the noise).

The next round, on another machine (the same two cores; its floors are lower: 0.04–0.05 s at
20,000 cases where the last one measured 0.07, 0.14–0.16 s at 100,000, 1.3–1.6 s at a
million, so the same report is further from 3× there). Where the time went:

- A report costs about 0.10 s whatever its size (200 cases: 0.10 s, 0.08 s of it the client's
  CPU; its floor 0.01 s): in a fresh process SQLAlchemy compiles every statement once (27 ms of
  CPU at 20,000 cases, 8 of it the closed cases' grouping), four connections are opened, the
  organisation and the request types are read. The lanes' Python and the main thread's share
  one interpreter lock, so the client's CPU (0.11 s at 20,000 cases) is spent one thread at a
  time; at 20,000 cases that is most of the report.
- At a million cases the server's CPU per statement, alone and without parallel workers
  (`qcpu`-style: the backend's /proc times around each): the closed cases' grouping 1.66 s, the
  stays' grouping 1.49, the escalations per type 1.12 (a join with the cases for the type) and
  per day 0.88, the lead times 1.07, the stays' ranks 0.94, the versions seen 0.29, and the
  stream of the open cases 1.1 (0.2 s finding them, 0.8 s their state changes). With the
  client's 0.7 s that is about 9.4 s of CPU on two cores: 4.7 s at the very best, against a
  floor of 1.3–1.6 s.

What changed, each measured and the output compared byte for byte (the 36 outputs above, at
20,000 and 100,000 cases, before → after):

- The closed cases' grouping had gone back to sorting a million rows on disk (85 MB): the
  planner reckons an `array_agg` state at 8 kB a group, and with the cases at a day's last
  second gathered that way it thought the hash table too big. Those cases are now each a
  group of their own (a handful): hashed again, 2.97 → 1.69 s alone, the report at a million
  6.55 → 5.22 s.
- The lanes open their connections in their own threads, at once, before the definitions
  are read (one exported snapshot, adopted by each).
- The stays' ranks are asked in one statement per lane (`reports.stay_windows`: a `UNION ALL`
  of the windows, each tagged and put in order again here) instead of 25 statements; and
  they are asked as soon as the stays are counted and the open cases read, on the lanes that
  are not counting the closed cases, instead of after everything else. The escalations moved
  to the lane of the lead times, which finished first.
- Lead times come from the interval between the two instants as a double, rounded to the µs
  (exact below 2³⁰ seconds, 34 years; beyond it from whole seconds and µs as before), and are
  gathered per type and area by hash after one sort by lead time alone, each run sorted again
  in Python (one look per value when in order). A third less of the server's time for them.
- Cursors are planned for all their rows (`cursor_tuple_fraction` 1): the open cases are
  found by `closed_at` and sorted (0.20 s at a million) instead of walking every case in id
  order (0.33 s).

- Schema 0011: each escalation row holds its case's request type. The count per type needs
  no join with the cases (1.12 → 0.46 s of the server's time at a million), and on PostgreSQL
  both escalation groupings come from one pass (`GROUPING SETS`: 0.8 s where the two took 1.3).
- The stays' ranks are asked in six batches, each taken by whichever lane comes free first
  (`engine.app.report._Windows`).

Figures (`--modes group_by,text --skip-sqlite`, 06f96aa → this, on this machine): 20,000 cases
0.19 → 0.17 s, 3.8–4.0 → 3.1–3.3× (`--runs 7`, several rounds: the noise between runs is
±10%); 100,000 0.58 → 0.54–0.57 s, 3.6 → 3.2–3.6× (`--runs 3`); a million 6.34 → 4.38–5.07 s,
4.6 → 3.6–3.9× (`--runs 2`; floors 1.20–1.39 s), peak 124 → 127 MB. SQLite at 20,000 cases:
0.32–0.35 s both before and after, 3.0–3.3× (its floor 0.10–0.12 s here). Tried and dropped: a
shorter switch interval for the interpreter lock (0.5 ms: no gain), one or two lanes instead
of three (one is slower, two the same within the noise), both escalation groupings in one
query on SQLite (no grouping sets there; grouped by all four columns it was slower than the
two). What is left is work, not waiting: at a million cases the main thread's stream of the
open cases (their state changes looked up by the redundant `ix_case_event_case_id` instead of
the unique (case_id, seq) index: 0.8 s), the closed cases' results stored when they close,
and at 20,000 cases the fixed cost above.

Schema 0012 and the escalations on SQLite (the next round, on another machine again: floors
0.06–0.07 s at 20,000 cases on PostgreSQL and 0.11–0.15 s on SQLite, 0.17–0.20 and
0.62–0.65 s at 100,000, 1.46–1.67 and 7.2–9.8 s at a million). Where the time went:

- On SQLite each of the two escalation counts read every row of the table, the widest the
  report reads (about a fifth of the report at 100,000 cases). Schema 0012 indexes the
  escalations by (type_key, unit, rung, fired_at) and by (fired_at, rung), the latter in place
  of the index on fired_at alone: each count reads an index that holds every column it needs,
  the period's bound included. Alone, at 100,000 cases: per type, unit and rung 164 → 19–31
  ms; per local day and rung 333 → 79 ms (whole seconds read from the text directly 333 → 290,
  the index 290 → 138, and then the local days as a table of their bounds joined to the
  index, a range each, instead of each escalation's day worked out: 138 → 79; a million
  1.50 → 0.87 s). Not for `--type`: SQLite then looks the type up in the other index once
  per day, so that count keeps the per-escalation day (`reports.escalation_days`).
- Schema 0012 drops the indexes on case_id alone of the events and escalations, which the
  unique keys that begin with case_id make redundant: one index entry less per event and
  escalation written. On PostgreSQL the open cases' state changes are now looked up on the
  unique (case_id, seq) key, one row per case instead of filtering its events; but that
  stream took 0.55 s at a million cases before and after: its time is the lookups' page reads
  (shared buffers of 128 MB beside a 5 GB database), not the filtering, as the last round
  thought.
- The versions the cases hold (a pass over all cases: 0.29–0.46 s at a million) are asked on
  the lane that counts the closed cases next, at the start, instead of on the main thread
  before the stream. The escalations are counted by whichever lane comes free first
  (`engine.app.report._FirstFree`): the stays' lane, at 20,000 cases as at a million. Neither
  moved the figures above the noise: at 20,000 cases the closed cases' grouping (60–80 ms
  alone, more than the whole floor) is the longest lane, after the versions.
- At a million cases on PostgreSQL (per-thread timeline of one report, 4.55 s): the lanes
  and the main thread end within 0.3 s of each other, the two cores busy throughout. Alone,
  the stays' grouping is 1.2 s with parallel workers (2.0 without: hashing four text columns
  over 5.9 million rows, a plain count of them 0.7 s), the closed cases' 1.9 s, the lead
  times 1.0–1.2 s. Tried and left out: the lead times' median and 90th percentile taken on
  the server (an ordered `array_agg` per grouping set, subscripted: 0.96–0.99 s against
  1.03–1.24 s, within the noise), and the stays grouped off their covering index in order
  (3.7 s: slower than hashing).

Figures (`--modes group_by,text`, ce5954e → this, rounds alternated on the same rows; the old
code on the schema 0011 copy): SQLite 20,000 cases 0.33 → 0.29–0.30 s (2.2–3.1 → 1.9–2.6×,
`--runs 7`), 100,000 1.45–1.46 → 1.17–1.20 s (2.2–2.3 → 1.8–1.9×, `--runs 3`), a million
18.5 → 13.5 s (2.2 → 1.9×, `--runs 1`); PostgreSQL 20,000 0.17–0.26 → 0.16–0.20 s (2.8–3.8
→ 2.7–3.5×, five rounds; the first three ran colder before than after, the last two gave
0.17–0.18 against 0.17), 100,000 0.56–0.64 → 0.53–0.54 s (3.3–3.5 → 2.7–3.1×), a million 4.38–4.55 →
4.32–5.26 s (3.0–3.2 → 3.0–3.4×, `--runs 2`, five rounds: no change above the noise; floors
1.36–1.67 s), peak 128–129 MB. PostgreSQL at a million cases stays at the edge of 3×: what it
asks of the two cores is work, about 8 s of CPU for the server and the client together. Same output, byte for byte
(32 outputs: text, `--json`, `--html`, `--public`; all, a period across both 2026 clock
changes, one around ISO week 53, `--since`, `--until`, `--type`, a type and a period,
`--unit`, a unit and a period) at 20,000 cases on both databases and at 100,000 on SQLite,
and the same on SQLite as on PostgreSQL.

Schema 0013 and the open cases' stays from their rows (the next round, this machine; floors
0.06–0.08 s at 20,000 cases on PostgreSQL, 0.18–0.24 s at 100,000, 1.38–1.60 s at a million).
Where the time went, each statement timed alone and serially on the server (parallel workers
off, the report's settings), at a million cases: the closed cases' grouping 1.80 s (of which
0.62 s works out each case's values and 1.2 s hashes the four groupings), the stays' grouping
1.67 s, the lead times 1.20 s, the escalations 0.95 s, the stays' ranks 1.03 s in all, the
versions the cases hold 0.27 s; 7.0 s together, beside the main connection's stream of the
open cases and the client's 0.65–0.73 s of CPU. A per-thread timeline: both cores busy from
the first query to the last, and the closed cases' grouping, started after the versions, the
last to end.

- The main connection's stream of the open cases' state changes took 1.4 s at a million
  cases (35,267 open): for each, its events looked up backwards for the move that began its
  stay now, then its moves from there, on pages of a 1.2 GB table. The case's own row holds
  that move (`state`, and `state_entered_at`: the instant of the event that began the stay;
  true of every open case here, and what `audit verify` checks). Only a suspension since then
  needs the events (it moves the stay's deadline). Schema 0013 indexes the `suspended` events
  alone, by case (`ix_case_event_suspended`; 1.5 s to build at a million cases, nothing
  entered for any other event), and the stream now reads the events only of the open cases
  suspended in their stay now, and of the dekking's; the others' stay now is made from their
  row (`engine.app.report._begun_from_rows`). That stream: 1.4 → 0.03 s.
- Tried and left out, each alternated with the code before it on the same rows:
  - the closed cases counted at once, for every loaded version over the instants from the
    first `created` event to the last closing (two index lookups), the versions the cases
    hold then confirming it (counted again where not). At 20,000 cases and at a million no
    faster: every lane is busy from the start either way, so starting the longest earlier
    only moves which waits;
  - the stays' ranks read within the whole days they fall in (each group's stays also counted
    per whole day, in the same grouping): the ranks 1.03 → 0.31 s, but the grouping 1.67 →
    2.19 s, about 0.2 s gained in all, within the noise;
  - the stays grouped off their covering index in order (no hashing): 0.17 → 0.11 s at
    100,000 cases, but the same 1.3 s at a million, where the index is read from disk cache;
  - the closed cases' per-group aggregates (the measures' sums, their first case, whether a
    stored form is odd) only in the grouping that needs them: no gain measured;
  - no parallel workers on the report's connections: within the noise (2%).

Figures (`--modes group_by,text --skip-sqlite`, c56a538 → this, rounds alternated on the same
rows): a million cases (`--runs 2`) 4.59–5.38 → 4.07–5.12 s, 2.9–3.5 → 2.6–3.5× (one round of
six within 3× before, eight of nine after); 100,000 (`--runs 3`, six rounds) 0.52–0.68 →
0.51–0.60 s, 2.1–3.7 → 2.4–3.4×; 20,000 (`--runs 5` and `7`, seven rounds) 0.19–0.24 →
0.17–0.21 s, 2.7–3.7 → 2.2–3.3×. Peak memory at a million 126–128 MB. The floor itself moves
±10–30% between runs (0.18–0.24 s at 100,000 cases, 1.38–1.80 s at a million), as much as
the margin left: the seconds fell at every size, the ratio is within 3× in most rounds, not
in every one. Same output, byte for byte (20 outputs:
text and `--json` for all, a period across both 2026 clock changes, one around ISO week 53,
`--since`, `--until`, `--type`, a type and a period, `--unit`; `--html` and `--public` for
all and the period) at 20,000, 100,000 and 1,000,000 cases.

Schema 0014 and the stays' counts kept as they change (the next round, this machine, a
noisier day: floors 0.06–0.08 s at 20,000 cases on PostgreSQL, 0.17–0.23 s at 100,000,
1.51–2.92 s at a million). The largest statement left beside the closed cases' grouping was
the stays' grouping: 5.9 million rows of `case_stay` hashed per type, state, unit and met at a
million cases, 1.0–1.9 s of the server's time, for 35 groups. Those counts now stay up to
date as rows are written: `stay_tally`, kept by triggers on `case_stay` (a statement's rows
counted at once on PostgreSQL, into a row per session so that concurrent transitions do not
queue; row by row on SQLite), and the report without a period reads it: 1.5–5 ms. A
transition that ends a stay pays the trigger: about 0.15 ms a transaction on PostgreSQL
(single-row inserts, trigger on and off alternated, 1,000 each, three rounds: 0–0.3 ms
apart), a few µs on SQLite; `bench_advance` did not move beyond its noise (five alternated
runs: SQLite 0.46–0.78 after, 0.48–0.66 before; PostgreSQL 0.72–0.92 after, 0.48–0.80
before). The upgrade fills the table from the rows: 2.9 s at a million cases.

Figures (`--modes group_by,text`, f43c082 → this, rounds alternated on the same rows):

- PostgreSQL, a million cases (`--runs 2`, eight rounds): 5.19–6.90 → 3.73–4.88 s,
  1.9–4.2 → 1.6–3.0× (within 3× in five rounds of eight before, eight of eight after); peak
  124–126 MB;
- PostgreSQL, 100,000 (`--runs 3`, four rounds): 0.56–0.65 → 0.47–0.56 s, 2.5–3.0 → 2.3–2.9×;
- PostgreSQL, 20,000 (`--runs 5` and `7`, eight rounds): 0.17–0.25 → 0.16–0.23 s, 2.8–3.6 →
  2.6–3.2× (seven rounds of eight within 3×). At this size the stays' grouping was small: what
  is left is the report's fixed cost in a fresh process (reading the organisation and the
  request types, about 17 ms; four connections; the first compilation of each statement)
  and the closed cases' grouping (56 ms), beside a floor of 60–80 ms;
- SQLite, 20,000 (`--runs 5`, two rounds): 0.38–0.47 → 0.38–0.41 s, 3.0–3.3 → 2.6–2.7×;
  100,000 (`--runs 3`, two rounds): 1.82–2.19 → 1.46–1.58 s, 2.4–2.6 → 2.1–2.2×.

Same output, byte for byte (the 20 outputs above) at 20,000, 100,000 and a million cases on
PostgreSQL and at 20,000 and 100,000 on SQLite, and SQLite's the same as PostgreSQL's.

The next round (this machine, a quieter day). The report's fixed cost in a fresh process,
at 20,000 cases on PostgreSQL: the newest request types were read one by one (the versions,
then a query per type), each on a connection of the pool. The report's own connection holds
the snapshot meanwhile, so the pool opened a fifth connection for them, on the report's path
before the lanes' work was asked (latest_types: 13–20 ms of the main thread). They are now
read in two queries on the report's own snapshot (`Definitions.latest_types(conn)`): 8–12 ms,
and four connections. Tried and dropped: asking the lanes' first queries before the
definitions are read (no gain above the noise, and the builder must decide first whether the
stays come stored), and the bestuurlijke dekking's events read on the third lane (slower in
four runs: they started later there and took longer beside the other lanes' queries). At
this size the report is work on two cores: about 0.09 s of the client's CPU and 0.15 s of the
server's (the closed cases' grouping 55–63 ms, most of it reading the rows' columns; the
escalations 30 ms; the lead times 28 ms; the versions 13 ms; the stays' ranks 20 ms), where
the floor is 0.06 s.

This bench now runs the modes in turns (a child of each per turn) rather than all of one
mode's children together: a spell of load fell on the report's children alone and put a round
over 3×, with the floor's best run taken in a quieter minute.

Figures (`--modes group_by,text`, f48df49 → this, rounds alternated on the same rows):

- PostgreSQL, 20,000 (`--runs 7`, modes in turns, eight rounds): 0.14–0.18 → 0.14 s,
  2.5–3.1 → 2.4–2.6×. Before the modes took turns (six rounds): 2.5–3.0 → 2.0–3.1×, one
  round over;
- PostgreSQL, 100,000 (`--runs 3`, four rounds in turns): 0.39–0.44 → 0.38–0.43 s, 2.3–2.5 →
  2.1–2.4× (three rounds before: 2.1–2.7 → 2.0–2.9×);
- PostgreSQL, a million (`--runs 2`, two rounds in turns and three before): 3.20–4.12 →
  3.05–3.61 s, 2.3–2.9 → 2.1–2.4×; peak 123–126 MB;
- SQLite, 20,000 (`--runs 5`, two rounds): 0.26–0.27 s both, 2.2–2.5 → 2.3–2.5×; 100,000
  (`--runs 3`, two rounds): 1.03–1.08 → 1.04–1.08 s, 1.6–1.7 → 1.8–1.9×; a million (`--runs
  1`, two rounds; the floor itself 6.4–12.6 s): 10.5–18.1 → 11.1–12.1 s, 1.3–1.4 → 1.7×;
  peak 165–167 MB.

Loading: the rows are made once (walking the definitions as above) and written to SQLite by
executemany in one transaction on the driver's own connection; PostgreSQL gets the same rows
by COPY, read back from that SQLite file (so they are made once for both). `--sqlite PATH`
and `--pg NAME` keep the databases for a later run (same `--cases`), and `--root DIR` runs
the children on another checkout's code (e.g. main's) against the same rows. PostgreSQL
gets `VACUUM ANALYZE` after the load — what autovacuum does in production a while after a
bulk load: the statistics, and the visibility map its index-only scans need.

    python bench/bench_report.py [--cases 100000] [--seed 1] [--runs 3] [--skip-pg] [--skip-sqlite]
                                 [--modes group_by,stream,text,json,html,public,period]
                                 [--sqlite PATH] [--pg NAME] [--root DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if "--root" in sys.argv:  # measure another checkout's code (e.g. main's) on the same rows
    ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve()
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from common import PG_SERVER, scratch_postgres  # noqa: E402

from engine.app.bundled import sample_paths  # noqa: E402
from engine.app.clock import FixedClock  # noqa: E402
from engine.app.service import Loket  # noqa: E402
from engine.core.definition import RequestType  # noqa: E402
from engine.core.durations import Duration  # noqa: E402
from engine.store.db import SCHEMA_REVISION, current_revision, migrate, open_engine  # noqa: E402
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t, stays_t  # noqa: E402
from engine.store.types import UTCDateTime  # noqa: E402

NOW = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=365)
MIX = {"melding": 0.45, "bewonersinitiatief": 0.35, "bijdrage": 0.20}
PARTNERS = {"woningcorporatie", "politie", "welzijnsorganisatie", "openbare_ruimte"}
HASH = "0" * 64
BATCH = 5000
FAILED_MAILS = 500


# -- making rows -------------------------------------------------------------------------------


def days_of(duration: Duration | None) -> float | None:
    """A duration in calendar days, roughly (five working days to the week)."""
    if duration is None:
        return None
    per = {"working_days": 7 / 5, "calendar_days": 1, "weeks": 7, "hours": 1 / 24}[duration.unit]
    return duration.amount * per


def walk(rt: RequestType, case_id: int, ref: str, rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:  # noqa: E501
    """One case with its events and escalations, as rows."""
    created = NOW - SPAN * rng.random() ** 0.7  # more recent cases than old ones
    events: list[dict[str, Any]] = []
    escalations: list[dict[str, Any]] = []

    def event(at: dt.datetime, action: str, **extra: Any) -> None:
        events.append({"case_id": case_id, "seq": len(events) + 1, "at": at, "recorded_at": at,
                       "actor": "c.devries", "action": action, "from_state": None, "to_state": None,
                       "trigger": None, "comment": None, "data": None, "digests": None,
                       "prev_hash": HASH, "hash": HASH, **extra})

    event(created, "created", to_state=rt.initial)
    if rng.random() < 0.5:
        event(created, "assigned", data={"assignee": "l.mulder"})
    state, since, stay, closed = rt.initial, created, 1, None
    for _ in range(30):
        spec = rt.states[state]
        if spec.final:
            closed = since
            break
        mean = 4.0 if spec.paused else 7.0 if spec.owner in PARTNERS else 2.5
        leave = since + dt.timedelta(days=rng.expovariate(1 / mean))
        deadline = days_of(spec.deadline)
        if deadline is not None:
            for place, after in enumerate((0, 7, 14), start=1):
                fired = since + dt.timedelta(days=deadline + after)
                if fired < min(leave, NOW):
                    event(fired, "escalated", from_state=state, data={"rung": str(place)})
                    escalations.append({"case_id": case_id, "stay": stay, "rung": str(place),
                                        "state": state, "unit": spec.owner, "recipient": "b.bakker",
                                        "due_at": fired, "fired_at": fired, "type_key": rt.key})
        if rng.random() < 0.3:
            event(since + (min(leave, NOW) - since) / 2, "comment",
                  comment="Besproken in het teamoverleg.")
        if leave > NOW:
            break
        options = rt.transitions_from(state)
        weights = [0.2 if rt.states[t.dest].final and t.dest != _best(rt) else 1.0 for t in options]
        choice = rng.choices(options, weights=weights)[0]
        event(leave, "transition", from_state=state, to_state=choice.dest, trigger=choice.trigger)
        state, since, stay = choice.dest, leave, stay + 1
    spec = rt.states[state]
    service = days_of(rt.service_norm)
    lead = days_of(rt.lead_time)
    service_due = created + dt.timedelta(days=service) if service else None
    case_due = created + dt.timedelta(days=lead) if lead else None
    for rung, due in (("service_norm", service_due), ("lead_time", case_due)):
        if due is not None and due < (closed or NOW):
            escalations.append({"case_id": case_id, "stay": 0, "rung": rung, "state": state,
                                "unit": spec.owner, "recipient": "a.jansen", "due_at": due,
                                "fired_at": due, "type_key": rt.key})
    deadline = days_of(spec.deadline)
    case = {
        "id": case_id, "ref": ref, "type_key": rt.key, "type_version": 1, "state": state,
        "owner": None if closed else spec.owner, "assignee": None,
        "data": {"title": f"Verzoek {case_id}"},
        "created_at": created, "created_by": "c.devries", "state_entered_at": since, "stay": stay,
        "state_due": since + dt.timedelta(days=deadline) if deadline and not closed else None,
        "service_due": service_due, "case_due": case_due, "case_due_limit": None,
        "next_fire_at": None,
        "suspended_at": since if spec.paused and not closed else None, "suspended_manually": False,
        "closed_at": closed, "escalation_level": 0, "service_fired": False, "lead_fired": False,
        "version": len(events), "last_seq": len(events), "last_hash": HASH, "salt": None,
        "redacted_at": None,
    }
    return case, events, escalations


def _best(rt: RequestType) -> str:
    """The final state a case mostly ends in: the destination of the last transition listed
    into a final state that is not a refusal."""
    finals = [t.dest for t in rt.transitions if rt.states[t.dest].final]
    good = [d for d in finals if d in ("toegekend", "afgerond", "afgehandeld")]
    return good[0] if good else finals[0]


def batches(types: dict[str, RequestType], count: int, seed: int) -> Iterator[tuple[list[Any], list[Any], list[Any]]]:
    rng = random.Random(seed)
    keys, weights = list(MIX), list(MIX.values())
    numbers: dict[str, int] = {}
    cases: list[Any] = []
    events: list[Any] = []
    escalations: list[Any] = []
    for case_id in range(1, count + 1):
        rt = types[rng.choices(keys, weights=weights)[0]]
        numbers[rt.prefix] = numbers.get(rt.prefix, 0) + 1
        ref = f"{rt.prefix}-X-{numbers[rt.prefix]:07d}"
        case, own_events, own_escalations = walk(rt, case_id, ref, rng)
        cases.append(case)
        events.extend(own_events)
        escalations.extend(own_escalations)
        if len(cases) == BATCH:
            yield cases, events, escalations
            cases, events, escalations = [], [], []
    if cases:
        yield cases, events, escalations


_TABLES = (cases_t, events_t, escalations_t)
_COPIED = (*_TABLES, stays_t)
"""What PostgreSQL gets from the SQLite file: the rows made, and the stays worked out from them."""


def _is_json(column_type: Any) -> bool:
    """A JSON column, also behind a TypeDecorator (the schema's JSONB-on-PostgreSQL type)."""
    return isinstance(column_type, sa.JSON) or isinstance(getattr(column_type, "impl", None), sa.JSON)


def _insert_sqlite(path: str, types: dict[str, RequestType], count: int, seed: int, totals: dict[str, Any]) -> None:
    """The rows in one transaction, by executemany on the driver's own connection, without a
    journal and with the tables' secondary indexes dropped meanwhile and made again after
    (sorting once is far cheaper than keeping ten million entries in order one by one)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute("PRAGMA cache_size = -1000000")  # 1 GB
        names = tuple(t.name for t in _TABLES)
        indexes = connection.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            f" AND tbl_name IN ({', '.join('?' * len(names))})", names).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        connection.execute("BEGIN")
        plans: list[tuple[str, Any, list[int], list[int]]] = []
        for batch in batches(types, count, seed):
            if not plans:
                for table, rows in zip(_TABLES, batch, strict=True):
                    sample = rows[0] if rows else {c.name: None for c in table.columns if c.name != "id"}
                    columns = [c.name for c in table.columns if c.name in sample]
                    instants = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UTCDateTime)]
                    documents = [i for i, c in enumerate(columns) if _is_json(table.c[c].type)]
                    plans.append((f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES"
                                  f" ({', '.join('?' * len(columns))})", itemgetter(*columns), instants, documents))
            for (statement, getter, instants, documents), rows in zip(plans, batch, strict=True):
                out = []
                for row in rows:
                    values = list(getter(row))
                    for i in instants:
                        if values[i] is not None:
                            values[i] = values[i].isoformat(" ", "microseconds")[:-6]  # UTC, without the zone
                    for i in documents:
                        if values[i] is not None:
                            values[i] = json.dumps(values[i])
                    out.append(values)
                connection.executemany(statement, out)
            _count(totals, batch)
        connection.execute("COMMIT")
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()


def _copy_postgres(engine: sa.Engine, source: str, totals: dict[str, Any]) -> None:
    """The rows of the SQLite database at `source` (made by `_insert_sqlite`), by COPY, one
    per table, in one transaction: the rows are made once, for both databases."""
    reader = sqlite3.connect(source)
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            cur.execute("SET TIME ZONE 'UTC'")  # SQLite's instants are UTC without their zone
            for table in _COPIED:
                columns = [c.name for c in table.columns]
                with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                    rows = reader.execute(f"SELECT {', '.join(columns)} FROM {table.name} ORDER BY rowid")
                    while chunk := rows.fetchmany(BATCH):
                        for row in chunk:
                            copy.write_row(row)
                totals[{"cases": "cases", "case_event": "events", "escalation": "escalations",
                        "case_stay": "stays"}[table.name]] = (
                    reader.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0])
            for table in _COPIED[1:]:  # the sequences past the ids copied
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"(SELECT max(id) FROM {table.name}))")
        raw.commit()
    finally:
        raw.close()
        reader.close()


def _fill_stays(loket: Loket, engine: sa.Engine) -> int:
    """`case_stay` of the rows just made, worked out from their histories as migration 0009
    fills it for existing cases (the engine writes a stay when it ends)."""
    from engine.store import stays

    try:
        with engine.begin() as conn:
            return stays.fill(conn, stays.expected(conn, loket.calendar(), loket.request_type))
    finally:
        engine.dispose()


def _count(totals: dict[str, Any], batch: tuple[list[Any], list[Any], list[Any]]) -> None:
    cases, events, escalations = batch
    totals["cases"] += len(cases)
    totals["events"] += len(events)
    totals["escalations"] += len(escalations)


def load(url: str, count: int, seed: int, source: str | None = None) -> dict[str, Any]:
    """The bench's rows into a new database at `url`, by bulk copy: executemany in one
    transaction on SQLite; on PostgreSQL COPY from the SQLite database `source` holding the
    same rows (made first in a scratch file when there is none)."""
    engine = open_engine(url, create=True)
    migrate(engine)
    loket = Loket(engine, FixedClock(NOW - SPAN - dt.timedelta(days=1)))
    org, files = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(files)
    types = {rt.key: rt for rt in loket.latest_types()}
    totals: dict[str, Any] = {"cases": 0, "events": 0, "escalations": 0}
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        if source is None:
            with tempfile.TemporaryDirectory() as folder:
                made = f"{folder}/rows.db"
                load(f"sqlite:///{made}", count, seed)
                _copy_postgres(engine, made, totals)
        else:
            _copy_postgres(engine, source, totals)
    else:
        engine.dispose()
        database = engine.url.database
        assert database is not None
        _insert_sqlite(database, types, count, seed, totals)
        totals["stays"] = _fill_stays(loket, open_engine(url))
    with engine.begin() as conn:
        conn.execute(sa.insert(outbox_t), [{
            "key": f"bench/{i}", "case_id": 1 + i * (count // FAILED_MAILS), "kind": "escalation",
            "language": "nl", "recipient": "b.bakker", "to_email": "b.bakker@voorbeeld.example",
            "to_name": "Bram Bakker", "subject": f"Escalatie {i}", "context": {}, "created_at": NOW,
            "status": "failed", "attempts": 8, "next_attempt_at": None,
            "last_error": "550 mailbox unavailable",
        } for i in range(FAILED_MAILS)])
    if engine.dialect.name == "postgresql":
        # What autovacuum does in production a while after a bulk load: the statistics, and
        # the visibility map, without which an index-only scan (the stays' rank lookups, the
        # groups off `ix_case_stay_group`) visits the table for every row. Outside a
        # transaction, as VACUUM must be.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    totals["load_seconds"] = time.perf_counter() - started
    engine.dispose()
    return totals


def loaded(url: str, count: int, seed: int, source: str | None = None) -> dict[str, Any]:
    """`load`, or the counts of a database a previous run loaded (`--sqlite`, `--pg`), upgraded
    to the newest schema first."""
    engine = open_engine(url, create=True)
    try:
        with engine.connect() as conn:
            present = conn.execute(sa.select(sa.func.count()).select_from(cases_t)).scalar_one()
            if present:
                def counted(table: sa.Table) -> int:
                    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                if present != count:
                    raise SystemExit(f"{url} holds {present:,} cases, not {count:,}: give another path")
                conn.rollback()
                found = current_revision(engine)
                if found is None or found < SCHEMA_REVISION:  # kept by an earlier schema's bench (not
                    migrate(engine)  # a newer one's, measured with --root): upgraded, as `loket init` does
                return {"cases": present, "events": counted(events_t),
                        "escalations": counted(escalations_t), "load_seconds": 0.0, "reused": True}
    except sa.exc.OperationalError:
        pass  # no tables yet
    except sa.exc.ProgrammingError:
        pass
    finally:
        engine.dispose()
    return load(url, count, seed, source)


# -- measuring ---------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> None:
    """Start VmHWM afresh from the resident set now (Linux 4.0+: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def _floor_group_by(loket: Loket) -> Any:
    c, e, x = cases_t.c, events_t.c, escalations_t.c
    with loket.read() as conn:
        return [
            conn.execute(sa.select(c.type_key, c.owner, c.closed_at.is_(None), sa.func.count())
                         .group_by(c.type_key, c.owner, c.closed_at.is_(None))).all(),
            conn.execute(sa.select(e.action, sa.func.count()).group_by(e.action)).all(),
            conn.execute(sa.select(x.rung, sa.func.count()).group_by(x.rung)).all(),
        ]


def _floor_stream(loket: Loket) -> int:
    from engine.store import reports

    rows = 0
    with loket.read() as conn:
        for stream in (reports.case_rows(conn, NOW), reports.move_rows(conn), reports.escalation_rows(conn)):
            for _ in stream:
                rows += 1
    return rows


def child(mode: str, url: str, out_dir: str) -> None:
    from cli import run_report

    # run_report imports these on use; imported here, the clock below times the report alone.
    from engine.app import report  # noqa: F401
    from engine.reporting import builder, text  # noqa: F401

    loket = Loket(open_engine(url), FixedClock(NOW))
    page = Path(out_dir) / "report.html"
    before = _status_kb("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    cpu = time.process_time()
    if mode == "group_by":
        _floor_group_by(loket)
    elif mode == "stream":
        _floor_stream(loket)
    elif mode == "text":
        run_report(loket, None, False, lambda _: None)
    elif mode == "json":
        run_report(loket, None, True, lambda _: None)
    elif mode == "html":
        run_report(loket, str(page), False, lambda _: None)
    elif mode == "public":
        run_report(loket, None, False, lambda _: None, public=str(page))
    elif mode == "period":
        from engine.reporting.figures import Filters

        run_report(loket, None, False, lambda _: None,
                   filters=Filters(since=NOW - dt.timedelta(days=91), until=NOW, type_key="bewonersinitiatief"))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = _status_kb("VmHWM")
    print(json.dumps({"seconds": seconds, "cpu": cpu, "growth_mb": (after - before) / 1024,
                      "peak_mb": after / 1024,
                      "page_kb": page.stat().st_size // 1024 if mode in ("html", "public") else None}))


def measure(modes: tuple[str, ...], url: str, out_dir: str, runs: int) -> dict[str, dict[str, Any]]:
    """The best of `runs` fresh children per mode: the others mostly measure the machine's
    load. The modes take turns, one child each per turn, so that the floors and the report
    meet the same spells of load on a shared machine (run one mode's children all together
    and a spell can fall on the report's alone)."""
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for _ in range(runs):
        for mode in modes:
            done = subprocess.run([sys.executable, __file__, "--child", mode, url, out_dir, "--root", str(ROOT)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"child {mode} failed:\n{done.stderr}")
            results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    best: dict[str, dict[str, Any]] = {}
    for mode, found in results.items():
        best[mode] = min(found, key=lambda r: r["seconds"])
        best[mode]["growth_mb"] = max(r["growth_mb"] for r in found)
        best[mode]["peak_mb"] = max(r["peak_mb"] for r in found)
    return best


MODES = ("group_by", "stream", "text", "json", "html", "public", "period")


def backend(label: str, url: str, count: int, seed: int, out_dir: str, runs: int,
            modes: tuple[str, ...] = MODES, source: str | None = None) -> None:
    totals = loaded(url, count, seed, source)
    how = "reused" if totals.get("reused") else f"loaded in {totals['load_seconds']:.0f} s"
    print(f"\n{label}: {totals['cases']:,} cases, {totals['events']:,} events, "
          f"{totals['escalations']:,} escalations, {FAILED_MAILS} failed emails ({how}; code of {ROOT})",
          flush=True)
    modes = ("group_by", "stream", *(m for m in modes if m not in ("group_by", "stream")))
    results = measure(modes, url, out_dir, runs)
    floor = results["group_by"]["seconds"]
    stream = results["stream"]["seconds"]
    print(f"  {'what':<34}{'seconds':>9}{'cpu s':>7}{'× GROUP BY':>12}{'× stream':>10}"
          f"{'growth MB':>11}{'peak MB':>9}")
    names = {"group_by": "floor: GROUP BY over the rows",
             "stream": "floor: stream the report's rows",
             "text": "loket report", "json": "loket report --json", "html": "loket report --html",
             "public": "loket report --public",
             "period": "report --since 13w --type (one type)"}
    for mode, r in results.items():
        print(f"  {names[mode]:<34}{r['seconds']:>9.2f}{r['cpu']:>7.2f}"
              f"{r['seconds'] / floor:>12.1f}"
              f"{r['seconds'] / stream:>10.2f}{r['growth_mb']:>11.0f}{r['peak_mb']:>9.0f}")
    if "html" in results and "public" in results:
        print(f"  page: {results['html']['page_kb']:,} KiB; public page: {results['public']['page_kb']:,} KiB")


def kept_postgres(name: str) -> str:
    """The URL of database `name` on the bench's server, made if it is not there."""
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3,
                        help="children per measurement; the fastest counts")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"what to measure, comma-separated (floors always): {','.join(MODES)}")
    parser.add_argument("--sqlite", metavar="PATH",
                        help="keep the SQLite database here (reused by a later run with the same --cases)")
    parser.add_argument("--pg", metavar="NAME",
                        help="keep the PostgreSQL database under this name (reused likewise)")
    parser.add_argument("--root", metavar="DIR", help="measure the code of this checkout (e.g. main)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as folder:
        source = None
        if not args.skip_sqlite:
            source = args.sqlite or f"{folder}/loket.db"
            backend("SQLite", f"sqlite:///{source}", args.cases, args.seed, folder, args.runs, modes)
        if not args.skip_pg:
            if args.pg:
                backend("PostgreSQL", kept_postgres(args.pg), args.cases, args.seed, folder, args.runs,
                        modes, source)
            else:
                with scratch_postgres() as url:
                    backend("PostgreSQL", url, args.cases, args.seed, folder, args.runs, modes, source)


if __name__ == "__main__":
    main()
