/**
 * Every capture decodes without error, and every socket agrees with the `ss` text taken at the
 * same moment: count, state, addresses, ports, inode, cookie, rtt/rttvar, rto, mss, cwnd,
 * ssthresh, bytes, segments, retransmissions, last*, pmtu, rcvmss, advmss, rcv_space, skmem and
 * the congestion algorithm. Shared captures are kernels 4.19–6.10; tests/captures holds ours.
 */
import assert from "node:assert/strict";
import { decodeCapture } from "../src/netlink/capture.ts";
import { allSharedPcaps, HAVE_FIXTURES, ownCaptures, sharedCaptures } from "./support/fixtures.ts";
import { checkCapturePair as checkPair } from "./support/records.ts";

Deno.test({
  name: "every shared capture decodes without error",
  ignore: !HAVE_FIXTURES,
  fn() {
    const files = allSharedPcaps();
    assert.ok(files.length >= 30, `only ${files.length} pcaps`);
    for (const f of files) {
      const s = decodeCapture(Deno.readFileSync(f), f, -1, () => {});
      assert.equal(s.stats.attrErrors, 0, f);
      assert.equal(s.stats.shortInetDiagMsg, 0, f);
      assert.equal(s.kernelErrors.length, 0, f);
    }
  },
});

for (const pair of sharedCaptures().filter((p) => p.ss)) {
  Deno.test(`capture ${pair.name} agrees with ss, socket by socket`, () => {
    const { sockets, values } = checkPair(pair);
    assert.ok(sockets > 0 && values > sockets * 20, `${pair.name}: ${values} values compared`);
  });
}

if (!HAVE_FIXTURES) {
  Deno.test({ name: "shared captures agree with ss (fixtures absent)", ignore: true, fn() {} });
}

for (const pair of ownCaptures()) {
  Deno.test(`own capture ${pair.name} agrees with ss, socket by socket`, () => {
    const { sockets, values } = checkPair(pair);
    assert.ok(
      sockets >= 100 && values > sockets * 20,
      `${pair.name}: ${sockets} sockets, ${values} values`,
    );
  });
}
