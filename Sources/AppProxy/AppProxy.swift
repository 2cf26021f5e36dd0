// Request forwarding to app instances: `Host: NAME.apps.DOMAIN` and `/apps/NAME/` routed to healthy
// instances with balancing, draining and passive outlier ejection.
