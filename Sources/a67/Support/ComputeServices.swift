import AppProxy
import ChunkStore
import Controller
import ControllerHTTP
import Foundation
import Replicator
import Server
import ServiceLifecycle

/// The compute half inside a67 serve (and a67 up --serve): the controller (a service), its agent API
/// (an HTTP module under /_a67/agent) and the app proxy in front of S3 (an `HTTPFront` and a service),
/// fed by the controller with the healthy instances of every app.
struct ComputeServices {
    var modules: [any HTTPModule] = []
    var fronts: [any HTTPFront] = []
    var services: [any Service] = []
    let controller: ControllerService

    init(server: BlobServer, repository: Repository, heartbeat: Duration, appsDomain: String, tls: Bool) {
        let store = ControllerStore(catalog: repository.catalog)
        var settings = ControllerService.Settings()
        settings.heartbeatInterval = heartbeat
        let routes = AppRouteTable()
        var proxySettings = AppProxy.Settings()
        proxySettings.forwardedProto = tls ? "https" : "http"
        let proxy = AppProxy(routes: routes, domain: appsDomain, settings: proxySettings)
        controller = ControllerService(store: store, settings: settings, grants: AgentAPI.grants(repository: repository),
                                       onRoutes: { routes.replace($0) }, onCatalogChange: { server.changed() },
                                       inFlight: { routes.inFlight($0) })
        modules.append(AgentAPI(server: server, service: controller, store: store))
        fronts.append(proxy)
        services += [controller, proxy]
    }
}
