//! Fuzz the commitlog record decoder: arbitrary bytes give errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferromq_engine::message::decode_record(data);
    let _ = ferromq_engine::message::decode_records(data);
    let _ = ferromq_engine::message::MessageProperties::decode(data);
});
