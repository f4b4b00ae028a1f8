//! Fuzz the `.properties` reader and the config loader on what it reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let props = ferromq_engine::config::Properties::parse(text);
        let _ = ferromq_engine::StoreConfig::from_properties(&props);
    }
});
