package org.atpstream.flink;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.net.ssl.SSLParameters;

import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.types.Row;

import redis.clients.jedis.DefaultJedisClientConfig;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;
import redis.clients.jedis.Response;
import redis.clients.jedis.exceptions.JedisNoScriptException;
import redis.clients.jedis.util.JedisURIHelper;

/**
 * Writes snapshots to the Redis serving store in pipelined batches, each with the store's
 * compare-and-set script, so a write that is not newer (version, then revision) is ignored.
 *
 * <p>The store's layout and script come from Python (state/serving.py) as key formats and
 * script text; this class only batches. A batch is sent when it is full, after at most
 * {@code maxDelayMs}, and always in {@link SinkWriter#flush}, which Flink calls before a
 * checkpoint barrier passes: every snapshot of a completed checkpoint is in Redis
 * (at-least-once, made idempotent by the revision). Within a batch only the newest
 * snapshot of a key is sent, since the older ones would be ignored anyway.
 *
 * <p>Credentials: the URL names the ACL user ({@code redis://atp-writer@host:6379/0};
 * {@code rediss://} for TLS). The password is looked up where the writer runs, never carried
 * in the job graph: the TaskManager's environment variable {@code ATP_REDIS_PASSWORD}, else
 * the file {@code passwordFile}, else a password in the URL.
 */
public final class RedisSnapshotSink implements Sink<Row> {
    private static final long serialVersionUID = 1L;

    private final String url;
    private final String script;
    private final String snapshotKeyFormat;
    private final String locationsKeyFormat;
    private final String itemsKey;
    private final int[] fields; // item, location, revision, snapshot JSON
    private final int maxBatch;
    private final long maxDelayMs;
    private final String passwordFile; // null: none

    public RedisSnapshotSink(
            String url,
            String script,
            String snapshotKeyFormat,
            String locationsKeyFormat,
            String itemsKey,
            int itemField,
            int locationField,
            int revisionField,
            int documentField,
            int maxBatch,
            long maxDelayMs,
            String passwordFile) {
        this.url = url;
        this.script = script;
        this.snapshotKeyFormat = snapshotKeyFormat;
        this.locationsKeyFormat = locationsKeyFormat;
        this.itemsKey = itemsKey;
        this.fields = new int[] {itemField, locationField, revisionField, documentField};
        this.maxBatch = maxBatch;
        this.maxDelayMs = maxDelayMs;
        this.passwordFile = passwordFile;
    }

    /** A connection as the URL says, with the password from the environment or the file. */
    static Jedis connect(String url, String passwordFile) throws IOException {
        URI uri = URI.create(url);
        DefaultJedisClientConfig.Builder config =
                DefaultJedisClientConfig.builder()
                        .database(JedisURIHelper.getDBIndex(uri))
                        .ssl(JedisURIHelper.isRedisSSLScheme(uri));
        if (JedisURIHelper.isRedisSSLScheme(uri)) {
            // The server's certificate must name the URL's host, as HTTPS checks it.
            SSLParameters tls = new SSLParameters();
            tls.setEndpointIdentificationAlgorithm("HTTPS");
            config.sslParameters(tls);
        }
        String[] userInfo =
                uri.getUserInfo() == null ? new String[0] : uri.getUserInfo().split(":", 2);
        if (userInfo.length > 0 && !userInfo[0].isEmpty()) {
            config.user(userInfo[0]);
        }
        String password = System.getenv("ATP_REDIS_PASSWORD");
        if ((password == null || password.isEmpty()) && passwordFile != null) {
            try {
                password = Files.readString(Path.of(passwordFile), StandardCharsets.UTF_8).strip();
            } catch (IOException e) {
                throw new IOException("cannot read the Redis password file " + passwordFile, e);
            }
        }
        if ((password == null || password.isEmpty()) && userInfo.length > 1) {
            password = userInfo[1];
        }
        if (password != null && !password.isEmpty()) {
            config.password(password);
        }
        return new Jedis(JedisURIHelper.getHostAndPort(uri), config.build());
    }

    @Override
    public SinkWriter<Row> createWriter(WriterInitContext context) throws IOException {
        return new Writer(context);
    }

    private final class Writer implements SinkWriter<Row> {
        private final Jedis jedis;
        private final ProcessingTimeService time;
        private final Counter written;
        private final Counter stale;
        private final Map<String, String[]> pending = new LinkedHashMap<>();
        private String sha;
        private boolean timerArmed;

        Writer(WriterInitContext context) throws IOException {
            this.jedis = connect(url, passwordFile);
            this.sha = jedis.scriptLoad(script);
            this.time = context.getProcessingTimeService();
            this.written = context.metricGroup().counter("snapshotsWritten");
            this.stale = context.metricGroup().counter("snapshotsStale");
        }

        @Override
        public void write(Row row, Context context) throws IOException {
            String item = (String) row.getField(fields[0]);
            String location = (String) row.getField(fields[1]);
            String key = String.format(snapshotKeyFormat, item, location);
            pending.put(
                    key,
                    new String[] {
                        key,
                        String.format(locationsKeyFormat, item, location),
                        String.valueOf(row.getField(fields[2])),
                        (String) row.getField(fields[3]),
                        location,
                        item
                    });
            if (pending.size() >= maxBatch) {
                send();
            } else if (!timerArmed) {
                timerArmed = true;
                time.registerTimer(
                        time.getCurrentProcessingTime() + maxDelayMs,
                        at -> {
                            timerArmed = false;
                            send();
                        });
            }
        }

        @Override
        public void flush(boolean endOfInput) throws IOException {
            send();
        }

        private void send() throws IOException {
            if (pending.isEmpty()) {
                return;
            }
            List<String[]> batch = new ArrayList<>(pending.values());
            try {
                sendOnce(batch);
            } catch (JedisNoScriptException e) {
                // The server restarted and lost its scripts; the batch is safe to resend.
                sha = jedis.scriptLoad(script);
                sendOnce(batch);
            }
            pending.clear();
        }

        private void sendOnce(List<String[]> batch) {
            Pipeline pipe = jedis.pipelined();
            List<Response<Object>> results = new ArrayList<>(batch.size());
            for (String[] w : batch) {
                results.add(pipe.evalsha(sha, List.of(w[0], w[1]), List.of(w[2], w[3], w[4])));
                pipe.sadd(itemsKey, w[5]);
            }
            pipe.sync();
            for (Response<Object> result : results) {
                if (Long.valueOf(1L).equals(result.get())) {
                    written.inc();
                } else {
                    stale.inc();
                }
            }
        }

        @Override
        public void close() {
            jedis.close();
        }
    }
}
