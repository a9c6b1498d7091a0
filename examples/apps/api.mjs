// An ordinary Express 5 app: nothing in it knows about uwsgi or the /api mount.
import express from 'express';

const app = express();
app.use(express.json({ limit: '1mb' }));

const users = new Map([
  ['1', { id: '1', name: 'Ada' }],
  ['42', { id: '42', name: 'Grace' }],
]);

app.get('/', (req, res) => {
  res.json({ app: 'express', baseUrl: req.baseUrl, url: req.url, originalUrl: req.originalUrl });
});

app.get('/users/:id', (req, res) => {
  const user = users.get(req.params.id);
  if (user === undefined) {
    res.status(404).json({ error: 'no such user' });
    return;
  }
  res.json(user);
});

app.post('/echo', (req, res) => {
  res.json({ received: req.body });
});

export default app;
