import test from 'ava';
import { Abandonable } from '../agent/ship/abandon';

test('settled promises are forgotten at once: a long-lived shipper holds nothing per message sent', async (t) => {
  const a = new Abandonable();
  for (let i = 0; i < 10_000; i++) t.is(await a.track(Promise.resolve(i)), i);
  await t.throwsAsync(a.track(Promise.reject(new Error('nack'))), { message: 'nack' });
  t.is(a.size, 0);
});

test('abandonAll rejects what is still pending, and only that', async (t) => {
  const a = new Abandonable();
  const settled = a.track(Promise.resolve('acked'));
  const hanging = a.track(new Promise<string>(() => undefined));
  t.is(await settled, 'acked');
  t.is(a.size, 1);
  a.abandonAll(new Error('the connection to NATS moved to another server'));
  await t.throwsAsync(hanging, { message: /moved to another server/ });
  t.is(a.size, 0);
});
