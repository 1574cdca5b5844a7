"""Gateway Load Balancer: the node program (flow steering in GENEVE), the appliance program
(TUN + nftables), their pieces (flow keys, steering logic, raw sockets) and readers of a
running GWLB lab (observe)."""
