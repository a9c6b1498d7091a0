// A Hono app: the container finds `app.fetch` and adapts it with @hono/node-server.
import { Hono } from 'hono';

// The mount is /hono and request.url keeps the prefix (fetchUrl: full).
const app = new Hono().basePath('/hono');

app.get('/', (c) => c.json({ app: 'hono', url: c.req.url }));

app.get('/stream', () => {
  // A streamed body: written as the chunks are produced, with back-pressure.
  let n = 0;
  const body = new ReadableStream({
    async pull(controller) {
      n += 1;
      if (n > 5) {
        controller.close();
        return;
      }
      controller.enqueue(new TextEncoder().encode(`tick ${n}\n`));
      await new Promise((resolve) => setTimeout(resolve, 200));
    },
  });
  return new Response(body, {
    // Tells nginx not to buffer this response (uwsgi_buffering, per response).
    headers: { 'content-type': 'text/plain; charset=utf-8', 'x-accel-buffering': 'no' },
  });
});

export default app;
