import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ROOT_CONTEXT,
  defaultTextMapGetter,
  defaultTextMapSetter,
  propagation,
} from "@opentelemetry/api";
import { BaggagePropagator } from "../src/propagators.ts";
import { CUSTOMER_KEY, setCustomerInContext } from "../src/customer.ts";
import {
  MAX_WATCHED,
  MAX_WATCH_MS,
  WATCH_DEBUG,
  WATCH_KEY,
  WATCH_TRACE,
  WatchList,
  formatWatchDocument,
  parseWatchDocument,
  watchLevelOf,
  watchList,
} from "../src/watch.ts";

const NOW = Date.parse("2026-11-21T12:00:00Z");
const doc = (watch: unknown) => JSON.stringify({ watch });

describe("watch-list documents", () => {
  it("reads entries, defaulting to debug, dropping expired ones, each of a customer's for its own time", () => {
    const r = parseWatchDocument(
      doc([
        { customer: "c-42", until: "2026-11-21T12:30:00Z" },
        { customer: "c-7", until: "2026-11-21T11:00:00Z", level: "trace" },
        { customer: "c-9", until: "2026-11-21T12:10:00Z", level: "trace" },
        { customer: "c-9", until: "2026-11-21T12:20:00Z", level: "debug" },
        { customer: "c-9", until: "2026-11-21T12:20:00Z", level: "debug" },
      ]),
      NOW,
    );
    assert.ok(r.ok);
    const at = (time: string) => Date.parse(`2026-11-21T${time}:00Z`);
    assert.deepEqual(r.entries, [
      { customer: "c-42", until: at("12:30"), level: WATCH_DEBUG },
      // Each for its own time; the same one twice, once.
      { customer: "c-9", until: at("12:10"), level: WATCH_TRACE },
      { customer: "c-9", until: at("12:20"), level: WATCH_DEBUG },
    ]);
    assert.deepEqual(
      parseWatchDocument(formatWatchDocument(r.entries), NOW),
      r,
    );
    // Trace until 12:10, then debug until 12:20: not trace until 12:20.
    const list = new WatchList();
    list.replace(r.entries, NOW);
    assert.equal(list.customers, 2);
    assert.deepEqual(
      ["12:05", "12:15", "12:25"].map((t) => list.levelFor("c-9", at(t))),
      [WATCH_TRACE, WATCH_DEBUG, undefined],
    );
  });

  it("refuses a document whole when anything in it is wrong, saying what", () => {
    const bad: Array<[string, RegExp]> = [
      ["{", /not JSON/],
      ["[]", /"watch" array/],
      [JSON.stringify({ watch: "c-42" }), /"watch" array/],
      [
        doc([{ customer: "c 42", until: "2026-11-21T12:30:00Z" }]),
        /entry 0: "customer"/,
      ],
      [doc([{ customer: "c-42", until: "soon" }]), /entry 0: "until"/],
      [
        doc([
          { customer: "c-42", until: "2026-11-21T12:30:00Z" },
          { customer: "c-7", until: "2026-11-21T12:30:00Z", level: "info" },
        ]),
        /entry 1: "level"/,
      ],
      [doc([null]), /entry 0 is not an object/],
      [
        doc(
          Array.from({ length: MAX_WATCHED + 1 }, (_, i) => ({
            customer: `c-${i}`,
            until: "2026-11-21T12:30:00Z",
          })),
        ),
        /at most 100/,
      ],
    ];
    for (const [text, problem] of bad) {
      const r = parseWatchDocument(text, NOW);
      assert.equal(r.ok, false, text);
      assert.match((r as { problem: string }).problem, problem);
    }
  });

  it("reads an end only with its date, time and time zone, and no further ahead than a watch lasts", () => {
    const until = (u: string) =>
      parseWatchDocument(doc([{ customer: "c-42", until: u }]), NOW);
    for (const [u, ms] of [
      ["2026-11-21T12:30:00Z", Date.parse("2026-11-21T12:30:00Z")],
      ["2026-11-21T12:30Z", Date.parse("2026-11-21T12:30:00Z")],
      ["2026-11-21T12:30:00.250Z", Date.parse("2026-11-21T12:30:00.250Z")],
      ["2026-11-21T12:30:00.123456Z", Date.parse("2026-11-21T12:30:00.123Z")],
      ["2026-11-21T14:30:00+02:00", Date.parse("2026-11-21T12:30:00Z")],
      ["2026-11-21T07:30:00-05:00", Date.parse("2026-11-21T12:30:00Z")],
      ["2026-11-28T11:59:00Z", Date.parse("2026-11-28T11:59:00Z")],
    ] as const) {
      const r = until(u);
      assert.ok(r.ok, `${u}: ${JSON.stringify(r)}`);
      assert.equal(r.entries[0]!.until, ms, u);
    }
    // Each of these read as some time before (so the customer was dropped
    // without a word) or as the reading service's local time.
    for (const u of [
      "1",
      "2026",
      "2026-11-21",
      "2026-11-21T12:30:00",
      "2026-11-21 12:30:00Z",
      "Sat, 21 Nov 2026 12:30:00 GMT",
      "2026-02-31T12:30:00Z",
      "2026-11-21T24:00:00Z",
      "2026-11-21T12:30:00+0200",
      "+002026-11-21T12:30:00Z",
    ]) {
      const r = until(u);
      assert.equal(r.ok, false, u);
      assert.match(
        (r as { problem: string }).problem,
        /entry 0: "until" must be an ISO 8601 time with its time zone, like 2026-11-21T12:30:00Z/,
        u,
      );
    }
    const far = until("2026-11-29T12:30:00Z");
    assert.equal(far.ok, false);
    assert.match(
      (far as { problem: string }).problem,
      /entry 0: "until" is more than 7 days ahead; a customer is watched for at most 7 days/,
    );
  });

  it("counts only the customers still watched against the limit", () => {
    const expired = Array.from({ length: MAX_WATCHED }, (_, i) => ({
      customer: `c-${i}`,
      until: "2026-11-21T11:00:00Z",
    }));
    const live = { customer: "c-42", until: "2026-11-21T12:30:00Z" };
    const r = parseWatchDocument(doc([...expired, live, live]), NOW);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(
      r.entries.map((e) => e.customer),
      ["c-42"],
    );
  });

  it("reads a document over the limit for editing, when asked to", () => {
    const over = doc(
      Array.from({ length: MAX_WATCHED + 1 }, (_, i) => ({
        customer: `c-${i}`,
        until: "2026-11-21T12:30:00Z",
      })),
    );
    assert.equal(parseWatchDocument(over, NOW).ok, false);
    const r = parseWatchDocument(over, NOW, { countLimit: false });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.entries.length, MAX_WATCHED + 1);
  });

  it("reads a document that begins with a byte order mark", () => {
    // As some Windows editors save UTF-8.
    const r = parseWatchDocument(
      `\uFEFF${doc([{ customer: "c-42", until: "2026-11-21T12:30:00Z" }])}`,
      NOW,
    );
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(
      r.entries.map((e) => e.customer),
      ["c-42"],
    );
  });
});

describe("WatchList", () => {
  it("answers per customer until each entry expires, and is inactive when empty", () => {
    const w = new WatchList();
    assert.equal(w.active, false);
    w.replace(
      [{ customer: "c-42", until: NOW + 1000, level: WATCH_DEBUG }],
      NOW,
    );
    assert.equal(w.active, true);
    assert.equal(w.levelFor("c-42", NOW + 999), WATCH_DEBUG);
    assert.equal(w.levelFor("c-7", NOW), undefined);
    assert.equal(w.levelFor("c-42", NOW + 1000), undefined);
    w.refresh(NOW + 1000);
    assert.equal(w.active, false);
  });

  it("stays active until the end of the latest watch a request carried", () => {
    const w = new WatchList();
    // A 30-minute watch: a request carrying it may run for longer than a
    // minute, and is watched all along.
    w.noteCarried(NOW + 1_800_000, NOW);
    assert.equal(w.active, true);
    w.refresh(NOW + 61_000);
    assert.equal(w.active, true);
    // A shorter watch carried later does not cut the longer one short.
    w.noteCarried(NOW + 120_000, NOW + 100_000);
    w.refresh(NOW + 1_799_999);
    assert.equal(w.active, true);
    w.refresh(NOW + 1_800_000);
    assert.equal(w.active, false);
  });

  it("turns the checks off by itself at the end of the last carried watch, with no list followed", (t) => {
    // A service that follows no watch list: nothing else ever refreshes it.
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: NOW });
    const w = new WatchList();
    w.noteCarried(NOW + 90_000);
    t.mock.timers.tick(30_000);
    w.noteCarried(NOW + 150_000);
    t.mock.timers.tick(119_999);
    assert.equal(w.active, true, "at the later end, not the first");
    t.mock.timers.tick(1);
    assert.equal(w.active, false);
    // And again for the next watched request.
    w.noteCarried(NOW + 160_000);
    assert.equal(w.active, true);
    t.mock.timers.tick(10_000);
    assert.equal(w.active, false);
  });
});

describe("the watch decision in baggage", () => {
  const p = new BaggagePropagator();
  // Epoch seconds from now, as a decision's end is written.
  const at = (ms: number) => Math.floor((Date.now() + ms) / 1000);

  it("is written for a watched customer and read back as the request's level", () => {
    const until = Date.now() + 60_000;
    const end = Math.floor(until / 1000);
    watchList.replace([{ customer: "c-42", until, level: WATCH_TRACE }]);
    try {
      const carrier: Record<string, string> = {};
      p.inject(
        setCustomerInContext(ROOT_CONTEXT, "c-42"),
        carrier,
        defaultTextMapSetter,
      );
      assert.equal(
        carrier["baggage"],
        `customer.id=c-42,threadline.watch=trace;until=${end}`,
      );
      const other: Record<string, string> = {};
      p.inject(
        setCustomerInContext(ROOT_CONTEXT, "c-7"),
        other,
        defaultTextMapSetter,
      );
      assert.equal(other["baggage"], "customer.id=c-7");
    } finally {
      watchList.replace([]);
    }
    // A service that has not read the list yet still honours the carried decision.
    const ctx = p.extract(
      ROOT_CONTEXT,
      { baggage: `customer.id=c-42,threadline.watch=trace;until=${end}` },
      defaultTextMapGetter,
    );
    assert.deepEqual(ctx.getValue(WATCH_KEY), {
      level: WATCH_TRACE,
      until: end * 1000,
      customer: "c-42",
    });
    assert.equal(watchList.active, true);
    assert.equal(watchLevelOf(ctx), WATCH_TRACE);
    // Kept out of the application's baggage, and written again on the way out.
    assert.equal(
      propagation.getBaggage(ctx)?.getEntry("threadline.watch"),
      undefined,
    );
    const onward: Record<string, string> = {};
    p.inject(ctx, onward, defaultTextMapSetter);
    assert.equal(
      onward["baggage"],
      `customer.id=c-42,threadline.watch=trace;until=${end}`,
    );
  });

  it("applies to the customer it came with only, and is not carried on for another", () => {
    const ctx = p.extract(
      ROOT_CONTEXT,
      {
        baggage: `threadline.watch=debug;until=${at(60_000)},customer.id=c-42`,
      },
      defaultTextMapGetter,
    );
    assert.equal(watchLevelOf(ctx), WATCH_DEBUG);
    // A step for another customer inside the request: not watched here...
    const step = setCustomerInContext(ctx, "c-7");
    assert.equal(watchLevelOf(step), undefined);
    assert.equal(watchLevelOf(ctx.deleteValue(CUSTOMER_KEY)), undefined);
    // ...nor downstream.
    const onward: Record<string, string> = {};
    p.inject(step, onward, defaultTextMapSetter);
    assert.equal(onward["baggage"], "customer.id=c-7");
    // Unless this service's own list watches that customer.
    watchList.replace([
      { customer: "c-7", until: Date.now() + 60_000, level: WATCH_TRACE },
    ]);
    try {
      assert.equal(watchLevelOf(step), WATCH_TRACE);
    } finally {
      watchList.replace([]);
    }
  });

  it("gives way to this service's own list where that logs more", () => {
    // The edge decided debug before its list said trace, or this service
    // watches the customer at trace itself: the more verbose level applies,
    // here and onward.
    const ctx = p.extract(
      ROOT_CONTEXT,
      {
        baggage: `customer.id=c-42,threadline.watch=debug;until=${at(60_000)}`,
      },
      defaultTextMapGetter,
    );
    const until = Date.now() + 120_000;
    watchList.replace([{ customer: "c-42", until, level: WATCH_TRACE }]);
    try {
      assert.equal(watchLevelOf(ctx), WATCH_TRACE);
      const onward: Record<string, string> = {};
      p.inject(ctx, onward, defaultTextMapSetter);
      assert.equal(
        onward["baggage"],
        `customer.id=c-42,threadline.watch=trace;until=${Math.floor(until / 1000)}`,
      );
    } finally {
      watchList.replace([]);
    }
    // A carried trace is not lowered to the list's debug.
    const verbose = p.extract(
      ROOT_CONTEXT,
      {
        baggage: `customer.id=c-42,threadline.watch=trace;until=${at(60_000)}`,
      },
      defaultTextMapGetter,
    );
    watchList.replace([{ customer: "c-42", until, level: WATCH_DEBUG }]);
    try {
      assert.equal(watchLevelOf(verbose), WATCH_TRACE);
    } finally {
      watchList.replace([]);
    }
  });

  it("ignores a watch that came without its customer", () => {
    const ctx = p.extract(
      ROOT_CONTEXT,
      { baggage: `threadline.watch=trace;until=${at(60_000)}` },
      defaultTextMapGetter,
    );
    assert.equal(ctx.getValue(WATCH_KEY), undefined);
    assert.equal(watchLevelOf(ctx), undefined);
    const onward: Record<string, string> = {};
    p.inject(ctx, onward, defaultTextMapSetter);
    assert.equal(onward["baggage"], undefined);
  });

  it("ignores a level it does not know", () => {
    const ctx = p.extract(
      ROOT_CONTEXT,
      { baggage: `threadline.watch=everything;until=${at(60_000)}` },
      defaultTextMapGetter,
    );
    assert.equal(ctx.getValue(WATCH_KEY), undefined);
  });

  it("ends at the end it carries, and is not honoured without a believable one", (t) => {
    const NOW_S = Math.floor(NOW / 1000);
    t.mock.timers.enable({ apis: ["Date"], now: NOW });
    const read = (watch: string) =>
      p.extract(
        ROOT_CONTEXT,
        { baggage: `customer.id=c-42,threadline.watch=${watch}` },
        defaultTextMapGetter,
      );
    const ctx = read(`debug;until=${NOW_S + 10}`);
    assert.equal(watchLevelOf(ctx), WATCH_DEBUG);
    t.mock.timers.tick(9_999);
    assert.equal(watchLevelOf(ctx), WATCH_DEBUG);
    t.mock.timers.tick(1);
    assert.equal(watchLevelOf(ctx), undefined);
    // Nor passed on once ended.
    const onward: Record<string, string> = {};
    p.inject(ctx, onward, defaultTextMapSetter);
    assert.equal(onward["baggage"], "customer.id=c-42");
    for (const watch of [
      "debug",
      `debug;until=${NOW_S}`,
      `debug;until=${NOW_S + (MAX_WATCH_MS + 120_000) / 1000}`,
      "debug;until=soon",
      `debug;until=${NOW_S + 10}.5`,
    ])
      assert.equal(read(watch).getValue(WATCH_KEY), undefined, watch);
    // Other properties may come with it, and its end among them.
    assert.equal(
      watchLevelOf(read(`trace;x=1;until = ${NOW_S + 10 + 60}`)),
      WATCH_TRACE,
    );
    t.mock.timers.reset();
    watchList.refresh(Date.now() + 120_000);
  });

  it("is passed on as ending no further ahead than a watch may last", () => {
    watchList.replace([
      {
        customer: "c-42",
        until: Date.now() + 30 * MAX_WATCH_MS,
        level: WATCH_DEBUG,
      },
    ]);
    let baggage: string | undefined;
    try {
      const carrier: Record<string, string> = {};
      p.inject(
        setCustomerInContext(ROOT_CONTEXT, "c-42"),
        carrier,
        defaultTextMapSetter,
      );
      baggage = carrier["baggage"];
    } finally {
      watchList.replace([]);
    }
    const end = Number(/until=(\d+)$/.exec(baggage ?? "")?.[1]);
    assert.ok(Math.abs(end * 1000 - (Date.now() + MAX_WATCH_MS)) < 5000);
    const ctx = p.extract(ROOT_CONTEXT, { baggage }, defaultTextMapGetter);
    assert.equal(watchLevelOf(ctx), WATCH_DEBUG);
    watchList.refresh(Date.now() + 120_000);
  });
});

it("refuses a watch document too long to be read, and says what the bound is", () => {
  const entry = {
    customer: "c-1",
    until: new Date(NOW + 60_000).toISOString(),
  };
  const r = parseWatchDocument(
    doc(Array.from({ length: MAX_WATCHED * 10 + 1 }, () => entry)),
    NOW,
  );
  assert.equal(r.ok, false);
  assert.match(
    (r as { problem: string }).problem,
    new RegExp(`more than a watch list is read with \\(${MAX_WATCHED * 10};`),
  );
});
