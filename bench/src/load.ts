import autocannon from "autocannon";

/**
 * Requests served before a measured run. V8 keeps compiling a service's
 * hot paths (and recompiling what it guessed wrong) for its first 20,000
 * to 25,000 requests, whatever the handler or agent (`node --trace-opt`),
 * on threads of its own that share the machine with everything else: a
 * run measured earlier weighs an agent's start-up in with its steady cost.
 */
export const WARM_UP = 25_000;

// autocannon notices that `amount` is reached only on its 1 s sampling tick,
// so its own timing (and ours around the callback) rounds each run up to
// whole seconds. The run is timed here from its start to its last response.
export function load(
  url: string,
  amount: number,
  connections: number,
): Promise<{ result: autocannon.Result; seconds: number }> {
  return new Promise((resolve, reject) => {
    let first = 0;
    let last = 0;
    const instance = autocannon(
      { url, connections, amount, timeout: 10 },
      (err, result) =>
        err ? reject(err) : resolve({ result, seconds: (last - first) / 1000 }),
    );
    instance.on("start", () => (first = performance.now()));
    instance.on("response", () => (last = performance.now()));
  });
}
