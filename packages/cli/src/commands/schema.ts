/** `uwsgi-ts schema`: the config's JSON Schema, the same bytes as @uwsgi-ts/container/schema.json. */
import { configSchema } from '@uwsgi-ts/container';
import { type CliIo, write } from '../io.ts';

export async function schema(io: CliIo): Promise<number> {
  await write(io.stdout, `${JSON.stringify(configSchema, null, 2)}\n`);
  return 0;
}
