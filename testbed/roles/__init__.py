"""Programs that template roles run in lab hosts: http_backend (a web instance that says who
it is and what it saw) and load_client (bounded load, one row per request). How the lab
starts them is testbed.lab.launch; the GWLB appliance and the load balancer nodes' programs
live with their load balancers (testbed.gwlb, testbed.alb, testbed.lb)."""
