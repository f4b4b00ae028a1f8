//! `-p` prints the effective configuration and exits; a broker file written for
//! RocketMQ (the seed's broker-a.properties, trailing blanks included) loads.

use std::process::Command;

#[test]
fn namesrv_and_broker_print_their_config() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path().join("namesrv.properties");
    std::fs::write(&ns, "listenPort=19876\nrocketmqHome=/opt/rocketmq\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"))
        .arg("-c")
        .arg(&ns)
        .arg("-p")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listenPort=19876"), "{text}");

    let store = dir.path().join("store");
    let seed = format!(
        "brokerClusterName=DefaultCluster \nbrokerName=broker-a \nbrokerId=0 \n\
         namesrvAddr=192.168.36.189:9876;192.168.36.54:9876 \ndefaultTopicQueueNums=4 \n\
         autoCreateTopicEnable=true \nautoCreateSubscriptionGroup=true \nlistenPort=10911 \n\
         deleteWhen=04 \nfileReservedTime=120 \nmapedFileSizeCommitLog=1073741824 \n\
         mapedFileSizeConsumeQueue=50000000 \ndestroyMapedFileIntervalForcibly=120000 \n\
         redeleteHangedFileInterval=120000 \ndiskMaxUsedSpaceRatio=88 \n\
         storePathRootDir={0} \nstorePathCommitLog={0}/commitlog \nmaxMessageSize=65536 \n\
         flushCommitLogLeastPages=4 \nflushConsumeQueueLeastPages=2 \n\
         flushCommitLogThoroughInterval=10000 \nflushConsumeQueueThoroughInterval=60000 \n\
         checkTransactionMessageEnable=false \nsendMessageThreadPoolNums=128 \n\
         pullMessageThreadPoolNums=128 \nbrokerRole=SYNC_MASTER \nflushDiskType=ASYNC_FLUSH\u{a0}\n",
        store.display()
    );
    let bp = dir.path().join("broker-a.properties");
    std::fs::write(&bp, seed).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-broker"))
        .arg("-c")
        .arg(&bp)
        .arg("-p")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "brokerName=broker-a\n",
        "namesrvAddr=192.168.36.189:9876;192.168.36.54:9876\n",
        "sendMessageThreadPoolNums=128\n",
        "pullMessageThreadPoolNums=128\n",
        "listenPort=10911\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!store.exists(), "-p does not open the store");

    // -n overrides namesrvAddr; -m prints the short list.
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-broker"))
        .arg("-c")
        .arg(&bp)
        .args(["-n", "10.0.0.1:9876", "-m"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("namesrvAddr=10.0.0.1:9876\n"), "{text}");
    assert!(!text.contains("pullMessageThreadPoolNums"), "{text}");
}
