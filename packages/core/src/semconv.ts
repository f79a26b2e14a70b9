// Attribute names from the OpenTelemetry semantic conventions (stable HTTP
// conventions, v1.23+), kept here as plain constants: the upstream package
// exports thousands of names and costs start-up time to load.

export const ATTR_HTTP_REQUEST_METHOD = "http.request.method";
export const ATTR_HTTP_REQUEST_METHOD_ORIGINAL = "http.request.method_original";
export const ATTR_HTTP_REQUEST_RESEND_COUNT = "http.request.resend_count";
export const ATTR_HTTP_RESPONSE_STATUS_CODE = "http.response.status_code";
export const ATTR_HTTP_ROUTE = "http.route";
export const ATTR_URL_FULL = "url.full";
export const ATTR_URL_PATH = "url.path";
export const ATTR_URL_QUERY = "url.query";
export const ATTR_URL_SCHEME = "url.scheme";
export const ATTR_SERVER_ADDRESS = "server.address";
export const ATTR_SERVER_PORT = "server.port";
export const ATTR_CLIENT_ADDRESS = "client.address";
export const ATTR_NETWORK_PEER_ADDRESS = "network.peer.address";
export const ATTR_NETWORK_PEER_PORT = "network.peer.port";
export const ATTR_NETWORK_PROTOCOL_VERSION = "network.protocol.version";
export const ATTR_USER_AGENT_ORIGINAL = "user_agent.original";
export const ATTR_ERROR_TYPE = "error.type";
export const ATTR_PEER_SERVICE = "peer.service";
export const ATTR_SERVICE_NAME = "service.name";
export const ATTR_EXCEPTION_TYPE = "exception.type";
export const ATTR_EXCEPTION_MESSAGE = "exception.message";
export const ATTR_EXCEPTION_STACKTRACE = "exception.stacktrace";
