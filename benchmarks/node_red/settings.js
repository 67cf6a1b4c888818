// Node-RED settings for the benchmark peer: no editor, flows from flow.json, quiet logs.
module.exports = {
    uiPort: parseInt(process.env.NODE_RED_PORT || "1880", 10),
    uiHost: "127.0.0.1",
    disableEditor: true,
    httpAdminRoot: false,
    httpNodeRoot: "/",
    flowFile: "flow.json",
    credentialSecret: false,
    logging: {console: {level: "warn", metrics: false, audit: false}},
    editorTheme: {projects: {enabled: false}},
};
