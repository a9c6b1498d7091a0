/**
 * The app each of the three containers serves: every answer names the container that gave it
 * (`INSTANCE`, set by the config's `env:`), so a client behind nginx can see the rotation.
 *
 *   GET /anything        {"instance":"a","pid":1234,"url":"/anything"} and `X-Instance: a`
 *   GET /anything?ms=N   the same after N ms (at most 1000): requests stay in flight a while
 */
export default function scaleOut(req, res) {
  const url = new URL(req.url ?? '/', 'http://x');
  const ms = Math.min(Math.max(Number(url.searchParams.get('ms')) || 0, 0), 1000);
  const answer = () => {
    const instance = process.env.INSTANCE ?? 'unnamed';
    const body = `${JSON.stringify({ instance, pid: process.pid, url: req.url })}\n`;
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-instance': instance,
    });
    res.end(body);
  };
  if (ms > 0) setTimeout(answer, ms);
  else answer();
}
