/**
 * Fork target of `probeApps` (app/probe.ts): receives the mounts, loads each app with the
 * container's loader, sends one result per mount, releases what the apps hold and exits.
 * Whatever an app leaves running (timers, sockets) ends with the process.
 */
import type { MountConfig } from '../config/types.ts';
import { loadApp } from './loader.ts';
import type { ProbeResult } from './probe.ts';

process.once('message', async (message: { mounts: readonly MountConfig[] }) => {
  for (const mount of message.mounts) {
    let result: ProbeResult;
    try {
      const app = await loadApp(mount);
      result = { path: mount.path, app: mount.app, ok: true, kind: app.kind, shape: app.shape };
      await app.close?.().catch(() => undefined);
    } catch (err) {
      const code = (err as { code?: unknown })?.code;
      result = {
        path: mount.path,
        app: mount.app,
        ok: false,
        ...(typeof code === 'string' ? { code } : {}),
        message: err instanceof Error ? err.message : String(err),
      };
    }
    await new Promise<void>((resolve) => process.send?.(result, () => resolve()));
  }
  process.exit(0);
});
