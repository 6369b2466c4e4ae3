package org.atpstream.flink;

import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Hands Python each Kafka record as a row (partition, offset, value), so a dead letter can
 * name where its record came from; PyFlink's value-only deserializers drop both.
 *
 * <p>The value crosses into Python as a string of one char per byte (ISO-8859-1), which
 * Python turns back into the same bytes: strings pass the JVM boundary as they are, while
 * byte arrays are converted element by element in thread mode. A record without a value
 * arrives as an empty string, which the job dead-letters.
 */
public final class SourceRecordDeserializer implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        byte[] value = record.value();
        out.collect(
                Row.of(
                        record.partition(),
                        record.offset(),
                        value == null ? "" : new String(value, StandardCharsets.ISO_8859_1)));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(
                new String[] {"partition", "offset", "value"}, Types.INT, Types.LONG, Types.STRING);
    }
}
