package enclaveproto

// The vsock ports between host and enclave (tmkms-light's, plus the log
// channel and the anchor's relays). The enclave listens on ConfigPort, the
// host on the others. The enclave program starts with no arguments, so
// ConfigPort and KMSProxyPort are fixed; the host's ports can be moved in
// tmkms.toml and reach the enclave in Configure.
const (
	ConfigPort           = 5050
	KMSProxyPort         = 8000 // the host's vsock-proxy to KMS
	DefaultStatePort     = 5555
	DefaultValidatorPort = 5000 // node i is bridged on DefaultValidatorPort+i
	DefaultLogPort       = 6050
	DefaultAnchorPort    = 7000 // etcd member i is relayed on DefaultAnchorPort+i
)
