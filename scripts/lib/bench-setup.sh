# Shared by the agent benchmarks (source it): loopback ports and a hub in $out/hub that
# knows a new agent in $out/agent (identity agent.json, sites web-eu).
#
#   bin=...; out=...; . scripts/lib/bench-setup.sh   # sets port, hubhttp, agenthttp
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); hubhttp=$(free_port); agenthttp=$(free_port)

rm -rf "$out/hub" "$out/agent"
mkdir -p "$out/agent"
"$bin/feedback-hub" init "$out/hub" --listen "127.0.0.1:$port" --http "127.0.0.1:$hubhttp" > /dev/null
"$bin/feedback-agent" keygen --out "$out/agent/agent.json" > "$out/agent/keygen.txt"
"$bin/feedback-hub" agents add --config "$out/hub/hub.yaml" \
    --node-id "$(sed -n 's/^node id: *//p' "$out/agent/keygen.txt")" \
    --public-key "$(sed -n 's/^public key: *//p' "$out/agent/keygen.txt")" --site web-eu > /dev/null
