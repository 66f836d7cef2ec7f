/**
 * The operator's own stores (runner: pod status, deletionPolicy Delete) are closed when they are
 * replaced, dropped or done with: an S3 store holds an SDK client with pooled sockets. Pure wiring,
 * so a spy factory stands in for the store.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StoreCache, withStore, type StoreFactory } from '../../src/controller/store-cache.js';
import type { StoreConfig } from '../../src/store/store-config.js';
import type { ObjectStore } from '../../src/store/object-store.js';

function spyFactory(): { create: StoreFactory; opened: string[]; closed: string[] } {
  const opened: string[] = [];
  const closed: string[] = [];
  const create: StoreFactory = (config) => {
    const name = config.kind === 'local' ? config.path : config.bucket;
    opened.push(name);
    const store: Pick<ObjectStore, 'close' | 'describe'> = { describe: () => name, close: () => closed.push(name) };
    return Promise.resolve(store as ObjectStore);
  };
  return { create, opened, closed };
}

const local = (path: string): StoreConfig => ({ kind: 'local', path });

describe('StoreCache', () => {
  test('reuses a store while its config is unchanged; closes it when the config changes', async () => {
    const spy = spyFactory();
    const cache = new StoreCache(spy.create);
    const first = await cache.get('ns/a', local('/one'));
    assert.equal(await cache.get('ns/a', local('/one')), first);
    assert.deepEqual(spy.opened, ['/one']);
    assert.deepEqual(spy.closed, []);
    await cache.get('ns/a', local('/two'));
    assert.deepEqual(spy.opened, ['/one', '/two']);
    assert.deepEqual(spy.closed, ['/one']);
  });

  test('drop and clear close what they forget', async () => {
    const spy = spyFactory();
    const cache = new StoreCache(spy.create);
    await cache.get('ns/a', local('/a'));
    await cache.get('ns/b', local('/b'));
    cache.drop('ns/a');
    cache.drop('ns/missing');
    assert.deepEqual(spy.closed, ['/a']);
    cache.clear();
    assert.deepEqual(spy.closed, ['/a', '/b']);
  });
});

describe('withStore', () => {
  test('closes the store after the task, also when the task fails', async () => {
    const spy = spyFactory();
    assert.equal(await withStore(local('/ok'), (store) => Promise.resolve(store.describe()), spy.create), '/ok');
    await assert.rejects(withStore(local('/fails'), () => Promise.reject(new Error('list failed')), spy.create), /list failed/);
    assert.deepEqual(spy.closed, ['/ok', '/fails']);
  });
});
