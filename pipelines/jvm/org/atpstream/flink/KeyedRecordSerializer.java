package org.atpstream.flink;

import java.nio.charset.StandardCharsets;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.flink.types.Row;

/**
 * Writes two fields of a Python row, a key and a value, to one topic as a keyed Kafka record.
 *
 * <p>PyFlink's record serializer builder hands the same element to the key and the value
 * schema, so a per-record key needs this one small class. The key is text (UTF-8). The value
 * is already encoded by Python (Confluent-framed Avro) and crosses the JVM boundary as a
 * string holding one char per byte (ISO-8859-1): Python strings pass as they are, while byte
 * arrays are converted element by element in thread mode.
 */
public final class KeyedRecordSerializer implements KafkaRecordSerializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    private final String topic;
    private final int keyField;
    private final int valueField;

    public KeyedRecordSerializer(String topic, int keyField, int valueField) {
        this.topic = topic;
        this.keyField = keyField;
        this.valueField = valueField;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(
            Row row, KafkaSinkContext context, Long timestamp) {
        String key = (String) row.getField(keyField);
        String value = (String) row.getField(valueField);
        return new ProducerRecord<>(
                topic,
                null,
                timestamp,
                key == null ? null : key.getBytes(StandardCharsets.UTF_8),
                value.getBytes(StandardCharsets.ISO_8859_1));
    }
}
