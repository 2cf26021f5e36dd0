/// The compute half's plain values and pure logic, shared by the controller (inside `a67 serve`) and
/// the node agent (`a67 agent`): what an app asks for (`Manifest/`: a67app.toml), where its instances
/// go (`Scheduler/`: a pure function of nodes, allocations and a request), and what it runs from
/// (`Bundle/`: a deterministic archive of the app's folder, stored as an object). Nothing here talks
/// to the network or the catalog; time comes in as values.
public enum Compute {}
