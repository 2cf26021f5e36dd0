// The node agent (`a67 agent`): joins a controller, heartbeats, follows its desired state, fetches and
// verifies bundles, and runs each instance as a supervised process group.
