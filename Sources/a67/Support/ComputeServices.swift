import ChunkStore
import Controller
import ControllerHTTP
import Foundation
import Replicator
import Server
import ServiceLifecycle

/// The compute half inside a67 serve (and a67 up --serve): the controller (a service), its agent API
/// (an HTTP module under /_a67/agent) and the app proxy in front of S3.
struct ComputeServices {
    var modules: [any HTTPModule] = []
    var services: [any Service] = []
    let controller: ControllerService

    init(server: BlobServer, repository: Repository, heartbeat: Duration) {
        let store = ControllerStore(catalog: repository.catalog)
        var settings = ControllerService.Settings()
        settings.heartbeatInterval = heartbeat
        controller = ControllerService(store: store, settings: settings, grants: AgentAPI.grants(repository: repository),
                                       onRoutes: { _ in })
        modules.append(AgentAPI(server: server, service: controller, store: store))
        services.append(controller)
    }
}
