// The controller's HTTP face inside a67 serve: the agent protocol (`AgentProtocol`, /_a67/agent) as an
// `HTTPModule`, node credential authentication, long-polled desired state and the chunk relay.
