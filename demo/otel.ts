/**
 * Starts the OpenTelemetry SDK with the OTLP/HTTP exporters when OTEL_EXPORTER_OTLP_ENDPOINT is
 * set (the SDK is loaded only then). Must run before the cache is created, so that tablecache's
 * spans and metrics go to the SDK. Returns how to flush and stop it, or undefined.
 */
export async function startOtel(serviceName: string): Promise<(() => Promise<void>) | undefined> {
  if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  const [{ NodeSDK }, { OTLPTraceExporter }, { OTLPMetricExporter }, { PeriodicExportingMetricReader }] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/exporter-metrics-otlp-http'),
      import('@opentelemetry/sdk-metrics'),
    ]);
  // The exporters read the endpoint (and headers) from the standard OTEL_EXPORTER_OTLP_* variables.
  const sdk = new NodeSDK({
    serviceName,
    traceExporter: new OTLPTraceExporter(),
    metricReaders: [
      new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: 5000 }),
    ],
  });
  sdk.start();
  return () => sdk.shutdown();
}
