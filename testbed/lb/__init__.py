"""Load balancer machinery shared by NLB, ALB and GWLB: target registry, health checks."""
