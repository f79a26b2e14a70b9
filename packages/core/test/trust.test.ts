import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AddressMatcher, EgressPolicy, InboundTrust } from "../src/trust.ts";

describe("AddressMatcher", () => {
  it("matches loopback, private ranges, CIDRs, hosts and wildcard domains", () => {
    const { matcher, errors } = AddressMatcher.parse(
      "loopback,private,203.0.113.0/24,orders,*.svc.cluster.local",
    );
    assert.deepEqual(errors, []);
    for (const ok of [
      "127.0.0.1",
      "::1",
      "::ffff:127.0.0.1",
      "10.1.2.3",
      "172.20.0.1",
      "192.168.1.1",
      "fd00::1",
      "203.0.113.9",
    ]) {
      assert.ok(matcher.matchesAddress(ok), ok);
    }
    for (const no of [
      "8.8.8.8",
      "172.32.0.1",
      "2001:db8::1",
      "",
      undefined,
      "not-an-ip",
    ]) {
      assert.ok(!matcher.matchesAddress(no), String(no));
    }
    assert.ok(matcher.matchesHost("localhost"));
    assert.ok(matcher.matchesHost("ORDERS"));
    assert.ok(matcher.matchesHost("payments.shop.svc.cluster.local"));
    assert.ok(matcher.matchesHost("[::1]"));
    assert.ok(!matcher.matchesHost("svc.cluster.local.evil.com"));
    assert.ok(!matcher.matchesHost("api.stripe.com"));
  });

  it("reports entries it cannot read", () => {
    assert.deepEqual(
      AddressMatcher.parse("loopback, 10.0.0.0/99, bad host!").errors,
      ["10.0.0.0/99", "bad host!"],
    );
  });

  it("reads a CIDR block only with a prefix length in digits", () => {
    const { matcher, errors } = AddressMatcher.parse(
      "10.0.0.0/, fd00::/, 10.0.0.0/+8, 10.0.0.0/8.0, 10.0.0.0/ 8",
    );
    assert.deepEqual(errors, [
      "10.0.0.0/",
      "fd00::/",
      "10.0.0.0/+8",
      "10.0.0.0/8.0",
      "10.0.0.0/ 8",
    ]);
    assert.ok(!matcher.matchesAddress("93.184.216.34"));
    assert.ok(!matcher.matchesAddress("2001:db8::1"));
    assert.ok(!matcher.matchesHost("example.com"));
  });

  it("matches nothing when empty or none", () => {
    assert.ok(
      !AddressMatcher.parse("none").matcher.matchesAddress("127.0.0.1"),
    );
    assert.ok(!AddressMatcher.parse("").matcher.matchesHost("localhost"));
  });
});

describe("InboundTrust", () => {
  it("trusts loopback and private callers by default", () => {
    const t = new InboundTrust();
    assert.ok(t.trusts("127.0.0.1"));
    assert.ok(t.trusts("10.0.0.7"));
    assert.ok(!t.trusts("198.51.100.1"));
  });

  it("trusts nobody at the edge", () => {
    assert.ok(!new InboundTrust({ edge: true }).trusts("127.0.0.1"));
  });

  it("trusts exactly the configured callers", () => {
    const t = new InboundTrust({ trustedCallers: "10.1.0.0/16" });
    assert.ok(t.trusts("10.1.2.3"));
    assert.ok(!t.trusts("127.0.0.1"));
  });
  it("takes a caller over a unix socket for a loopback caller", () => {
    assert.ok(new InboundTrust().trusts(undefined, true));
    assert.ok(new InboundTrust().trustsProxy(undefined, true));
    assert.ok(!new InboundTrust().trusts(undefined));
    const t = new InboundTrust({
      trustedCallers: "private",
      trustedProxies: "10.0.0.0/8,::1",
    });
    assert.ok(!t.trusts(undefined, true));
    assert.ok(!t.trustsProxy(undefined, true));
    assert.ok(!new InboundTrust({ edge: true }).trusts(undefined, true));
  });

  it("refuses host names, which a caller's address never matches", () => {
    const t = new InboundTrust({
      trustedCallers: "orders.internal, *.svc.cluster.local, 10.1.0.0/16",
    });
    assert.deepEqual(t.errors, ["orders.internal", "*.svc.cluster.local"]);
    assert.ok(t.trusts("10.1.2.3"));
  });

  it("trusts nobody more for a CIDR block missing its prefix length", () => {
    const t = new InboundTrust({ trustedCallers: "10.0.0.0/" });
    assert.deepEqual(t.errors, ["10.0.0.0/"]);
    assert.ok(!t.trusts("127.0.0.1"));
    assert.ok(!t.trusts("198.51.100.1"));
  });
});

describe("InboundTrust.forwardedClient", () => {
  const t = new InboundTrust({
    edge: true,
    trustedCallers: "none",
    trustedProxies: "loopback,10.0.0.0/8,fd00::/8",
  });

  it("reads proxies' X-Forwarded-For even at the edge, and only theirs", () => {
    assert.ok(t.trustsProxy("127.0.0.1"));
    assert.ok(t.trustsProxy("::ffff:10.1.2.3"));
    assert.ok(!t.trustsProxy("192.168.0.9"));
    assert.ok(
      !new InboundTrust({ trustedProxies: "none" }).trustsProxy("127.0.0.1"),
    );
  });

  it("takes the rightmost address that is not a trusted proxy", () => {
    const peer = "127.0.0.1";
    assert.equal(t.forwardedClient("203.0.113.66", peer), "203.0.113.66");
    // What the client wrote itself, left of what the proxies appended, is not believed.
    assert.equal(
      t.forwardedClient("198.51.100.7, 203.0.113.9, 10.0.0.1", peer),
      "203.0.113.9",
    );
    assert.equal(t.forwardedClient("10.0.0.2,10.0.0.1", peer), "10.0.0.2");
    assert.equal(t.forwardedClient("203.0.113.5:8080", peer), "203.0.113.5");
    assert.equal(
      t.forwardedClient("[2001:db8::1]:4711, fd00::1", peer),
      "2001:db8::1",
    );
    assert.equal(t.forwardedClient("2001:db8::2", peer), "2001:db8::2");
  });

  it("takes the peer when an entry on the way is not an IP address", () => {
    const peer = "127.0.0.1";
    for (const header of [
      "evil <script>, 10.0.0.1",
      "unknown",
      "",
      " , ",
      "203.0.113.5:http",
      "[2001:db8::1",
      "203.0.113.5, 10.0.0.1:99999",
      "1.2.3.4.5",
    ])
      assert.equal(t.forwardedClient(header, peer), peer, header);
    // Left of the client, the rest is not looked at.
    assert.equal(t.forwardedClient("evil, 203.0.113.1", peer), "203.0.113.1");
  });

  it("refuses host names among the proxies", () => {
    const p = new InboundTrust({ trustedProxies: "lb.internal, 10.0.0.1" });
    assert.deepEqual(p.proxyErrors, ["lb.internal"]);
    assert.deepEqual(p.errors, []);
  });
});

describe("EgressPolicy", () => {
  it("sends baggage to loopback, private and listed hosts only", () => {
    const p = new EgressPolicy({ internalHosts: "*.internal" });
    assert.ok(p.classify("127.0.0.1", 80).baggage);
    assert.ok(p.classify("10.0.0.5", 80).baggage);
    assert.ok(p.classify("orders.internal", 80).baggage);
    assert.ok(!p.classify("api.example.com", 443).baggage);
  });

  it("keeps baggage and the customer header, x-customer-id unless named, to internal hosts", () => {
    assert.deepEqual(new EgressPolicy().privateHeaders, [
      "baggage",
      "x-customer-id",
    ]);
    const p = new EgressPolicy({
      customerHeader: "X-Tenant-Customer",
      privateHeaders: ["X-Session"],
    });
    assert.equal(p.customerHeader, "x-tenant-customer");
    assert.deepEqual(p.privateHeaders, [
      "baggage",
      "x-tenant-customer",
      "x-session",
    ]);
  });

  it("drops the defaults when the list starts with none", () => {
    const p = new EgressPolicy({ internalHosts: "none,orders" });
    assert.ok(!p.classify("127.0.0.1", 80).baggage);
    assert.ok(p.classify("orders", 80).baggage);
  });

  it("names third parties and never sends them baggage, even on loopback", () => {
    const p = new EgressPolicy({
      thirdParties:
        "api.stripe.com=stripe,*.paypal.com=paypal,127.0.0.1:4010=payments",
    });
    assert.deepEqual(p.classify("api.stripe.com", 443), {
      baggage: false,
      thirdParty: "stripe",
    });
    assert.deepEqual(p.classify("api-m.paypal.com", 443), {
      baggage: false,
      thirdParty: "paypal",
    });
    assert.deepEqual(p.classify("127.0.0.1", 4010), {
      baggage: false,
      thirdParty: "payments",
    });
    assert.deepEqual(p.classify("127.0.0.1", 4011), {
      baggage: true,
      thirdParty: undefined,
    });
  });

  it("knows a host however it is spelt", () => {
    const p = new EgressPolicy({
      thirdParties: "127.0.0.1=payments,API.Stripe.com=stripe,[0:0::1]=v6",
    });
    for (const host of [
      "::ffff:127.0.0.1",
      "[::ffff:7f00:1]",
      "0:0:0:0:0:ffff:7f00:1",
    ])
      assert.equal(p.classify(host, 80).thirdParty, "payments", host);
    assert.equal(p.classify("api.stripe.com.", 443).thirdParty, "stripe");
    assert.equal(p.classify("0::1", 80).thirdParty, "v6");
    assert.ok(new EgressPolicy().classify("[::ffff:10.1.2.3]", 80).baggage);
  });

  it("matches a third party by host alone when the port is unknown", () => {
    const p = new EgressPolicy({ thirdParties: "127.0.0.1:4010=payments" });
    assert.equal(p.classify("127.0.0.1", undefined).thirdParty, "payments");
    assert.equal(p.classify("127.0.0.1", undefined).baggage, false);
    assert.equal(p.classify("127.0.0.1", 4011).baggage, true);
  });

  it("matches a third party declared by address, address range or URL", () => {
    const p = new EgressPolicy({
      thirdParties:
        "http://10.0.0.5:8080=partner,10.9.0.0/16=bank,[fd00:1::/32]:443=v6," +
        "https://API.Pay.example/=pay",
    });
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.classify("10.0.0.5", 8080), {
      baggage: false,
      thirdParty: "partner",
    });
    assert.equal(p.classify("10.0.0.5", 8081).thirdParty, undefined);
    assert.equal(p.classify("10.9.1.1", 443).thirdParty, "bank");
    assert.equal(p.classify("::ffff:10.9.200.3", 80).thirdParty, "bank");
    assert.equal(p.classify("10.10.0.1", 443).baggage, true);
    assert.equal(p.classify("[fd00:1::7]", 443).thirdParty, "v6");
    assert.equal(p.classify("fd00:1::7", 80).thirdParty, undefined);
    assert.equal(p.classify("api.pay.example", 443).thirdParty, "pay");
    assert.deepEqual(
      p.thirdParties.map((t) => t.pattern),
      ["10.0.0.5:8080", "10.9.0.0/16", "fd00:1::/32:443", "api.pay.example"],
    );
  });

  it("refuses third-party patterns that could never match", () => {
    const p = new EgressPolicy({
      thirdParties:
        "*stripe.com=stripe,pay.example.com/v1=pay,https://api.x.com/v1=x," +
        "http://10.0.0.0/16=bank,10.0.0.0/33=wide,https://u@api.y.com=y," +
        "api.z.com?a=1=z,stripe.*=s",
    });
    assert.deepEqual(p.thirdPartyErrors, [
      "*stripe.com=stripe",
      "pay.example.com/v1=pay",
      "https://api.x.com/v1=x",
      "http://10.0.0.0/16=bank",
      "10.0.0.0/33=wide",
      "https://u@api.y.com=y",
      "api.z.com?a=1=z",
      "stripe.*=s",
    ]);
    assert.deepEqual(p.thirdParties, []);
  });

  it("accepts the object form and reports bad rules", () => {
    const p = new EgressPolicy({
      thirdParties: { "[::1]:9000": "ipv6-api", "api.x.com:notaport": "x" },
    });
    assert.equal(p.classify("::1", 9000).thirdParty, "ipv6-api");
    assert.deepEqual(p.errors, ["api.x.com:notaport=x"]);
    assert.deepEqual(p.thirdPartyErrors, ["api.x.com:notaport=x"]);
    assert.deepEqual(p.internalHostErrors, []);
  });
});
