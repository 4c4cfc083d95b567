// Preloaded into the reference server (node --import) so that it listens on
// 127.0.0.1 only: server-everything calls app.listen(PORT) without a host,
// which would bind every interface.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if ((typeof args[0] === "number" || typeof args[0] === "string") && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
