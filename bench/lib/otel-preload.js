'use strict';
/**
 * The OpenTelemetry arm of bench/overhead.js, loaded with `--require`:
 * @opentelemetry/instrumentation-fs under a NodeTracerProvider with a
 * BatchSpanProcessor, as a user tracing their fs would set it up, but with an
 * exporter that drops every batch at once, so what is measured is the
 * instrumentation and the span creation only (the peer issue 15 names).
 *
 * The workload reads the count of spans that reached the exporter through
 * `globalThis[Symbol.for('understudy.bench.otel')]`: a comparison against an
 * instrumentation that created no span would mean nothing, so overhead.js
 * fails when the count is short of the calls made.
 */
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { FsInstrumentation } = require('@opentelemetry/instrumentation-fs');
const { NodeTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-node');

// ExportResultCode.SUCCESS of @opentelemetry/core (not a direct dependency here).
const SUCCESS = 0;

/** A SpanExporter that counts the spans handed to it and drops them. */
class DroppingExporter {
  constructor() {
    this.exported = 0;
  }

  export(spans, resultCallback) {
    this.exported += spans.length;
    resultCallback({ code: SUCCESS });
  }

  shutdown() {
    return Promise.resolve();
  }

  forceFlush() {
    return Promise.resolve();
  }
}

const exporter = new DroppingExporter();
// A timed synchronous loop gives the processor no turn to export, and the
// default queue (2,048) would drop the rest of the spans unseen; a queue that
// holds a whole run keeps every span counted (a push costs next to nothing).
const processor = new BatchSpanProcessor(exporter, { maxQueueSize: 1_000_000 });
const provider = new NodeTracerProvider({ spanProcessors: [processor] });
provider.register();
registerInstrumentations({
  tracerProvider: provider,
  // Spans for every fs call, not only those under a parent span (false is the
  // default; said so that a change of default cannot empty the arm).
  instrumentations: [new FsInstrumentation({ requireParentSpan: false })],
});

globalThis[Symbol.for('understudy.bench.otel')] = {
  /** Exports what the processor holds; resolves to the spans exported so far. */
  async spans() {
    await provider.forceFlush();
    return exporter.exported;
  },
};
