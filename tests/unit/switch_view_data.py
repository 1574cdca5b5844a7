# ruff: noqa: E501  (verbatim tool output: its lines are as long as the tools make them)
"""Real output of ovs-ofctl / ovs-appctl (OVS 3.1.0, userspace datapath), taken on a throwaway
bridge with the GWLB tables of the switch datapath (issue 15): the samples the parsers of
testbed.gwlb.switch_view are tested on."""

FLOWS = """\
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x0, duration=30.937s, table=60, n_packets=41, n_bytes=2844, priority=100,ip,reg6=0x1 actions=ct(table=61,zone=4001)
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x0, duration=30.953s, table=61, n_packets=0, n_bytes=0, priority=300,ct_state=+est+trk,ct_label=0xa00f105/0xffffffff,ip actions=load:0x2->NXM_NX_REG7[],resubmit(,62)
 cookie=0x0, duration=30.952s, table=61, n_packets=32, n_bytes=2219, priority=200,ct_state=+est+trk,ip actions=move:NXM_NX_CT_LABEL[0..31]->NXM_NX_REG1[],move:NXM_NX_CT_LABEL[32..63]->NXM_NX_REG2[],resubmit(,63)
 cookie=0x0, duration=30.952s, table=61, n_packets=1, n_bytes=71, priority=200,ct_state=+rel+trk,ip actions=move:NXM_NX_CT_LABEL[0..31]->NXM_NX_REG1[],move:NXM_NX_CT_LABEL[32..63]->NXM_NX_REG2[],resubmit(,63)
 cookie=0x0, duration=30.952s, table=61, n_packets=8, n_bytes=554, priority=100,ct_state=+new+trk,ip actions=load:0x1->NXM_NX_REG7[],resubmit(,62)
 cookie=0x0, duration=30.952s, table=61, n_packets=0, n_bytes=0, priority=50,ip actions=load:0->NXM_NX_REG7[],resubmit(,62)
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x0, duration=30.968s, table=66, n_packets=0, n_bytes=0, priority=100,ip,reg1=0xa000104,reg7=0x1 actions=ct(commit,zone=4001,exec(move:NXM_NX_REG1[]->NXM_NX_CT_LABEL[0..31],move:NXM_NX_REG2[]->NXM_NX_CT_LABEL[32..63])),resubmit(,63)
 cookie=0x0, duration=30.968s, table=66, n_packets=8, n_bytes=554, priority=100,ip,reg1=0xa000105,reg7=0x1 actions=ct(commit,zone=4001,exec(move:NXM_NX_REG1[]->NXM_NX_CT_LABEL[0..31],move:NXM_NX_REG2[]->NXM_NX_CT_LABEL[32..63])),resubmit(,63)
 cookie=0x0, duration=30.968s, table=66, n_packets=0, n_bytes=0, priority=100,ip,reg1=0xa000104,reg7=0x2 actions=ct(commit,zone=4001,exec(move:NXM_NX_REG1[]->NXM_NX_CT_LABEL[0..31],move:NXM_NX_REG2[]->NXM_NX_CT_LABEL[32..63])),resubmit(,63)
 cookie=0x0, duration=30.968s, table=66, n_packets=0, n_bytes=0, priority=50 actions=resubmit(,63)
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x0, duration=30.984s, table=67, n_packets=0, n_bytes=0, priority=100,reg1=0xa000104 actions=drop
 cookie=0x0, duration=30.984s, table=67, n_packets=41, n_bytes=2844, priority=100,reg1=0xa000105 actions=drop
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x0, duration=31.001s, table=68, n_packets=0, n_bytes=0, priority=100,tun_src=10.0.1.4 actions=drop
 cookie=0x0, duration=31.001s, table=68, n_packets=0, n_bytes=0, priority=100,tun_src=10.0.1.5 actions=drop
"""

CONNTRACK_S = """\
icmp,orig=(src=10.249.1.10,dst=10.249.1.20,id=11137,type=8,code=0),reply=(src=10.249.1.20,dst=10.249.1.10,id=11137,type=0,code=0),zone=4001,timeout=17,labels=0x800100010a000105
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=45196,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=45196),zone=4001,timeout=86392,labels=0x800100010a000105,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=45208,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=45208),zone=4001,timeout=22,labels=0x800100010a000105,protoinfo=(state=TIME_WAIT)
udp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=56389,dport=9001),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9001,dport=56389),zone=4001,timeout=52,labels=0x800100010a000105
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=42734,dport=9002),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9002,dport=42734),zone=4001,timeout=22,labels=0x800100010a000105,protoinfo=(state=TIME_WAIT)
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=45190,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=45190),zone=4001,timeout=86392,labels=0x800100010a000105,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=45206,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=45206),zone=4001,timeout=86392,labels=0x800100010a000105,protoinfo=(state=ESTABLISHED)
udp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=43705,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=43705),zone=4001,timeout=22,labels=0x800100010a000105
"""

CONNTRACK_M = """\
icmp,orig=(src=10.249.1.10,dst=10.249.1.20,id=11137,type=8,code=0),reply=(src=10.249.1.20,dst=10.249.1.10,id=11137,type=0,code=0),id=0,zone=4001,status=0,labels=0x800100010a000105
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=45196,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=45196),id=0,zone=4001,status=0,labels=0x800100010a000105,protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED,wscale_orig=9,wscale_reply=9,flags_orig=WINDOW_SCALE,flags_reply=WINDOW_SCALE)
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=45208,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=45208),id=0,zone=4001,status=0,labels=0x800100010a000105,protoinfo=(state_orig=FIN_WAIT_2,state_reply=FIN_WAIT_2,wscale_orig=9,wscale_reply=9,flags_orig=WINDOW_SCALE,flags_reply=WINDOW_SCALE)
udp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=56389,dport=9001),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9001,dport=56389),id=0,zone=4001,status=0,labels=0x800100010a000105
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=42734,dport=9002),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9002,dport=42734),id=0,zone=4001,status=0,labels=0x800100010a000105,protoinfo=(state_orig=TIME_WAIT,state_reply=TIME_WAIT,wscale_orig=9,wscale_reply=0,flags_orig=WINDOW_SCALE,flags_reply=0)
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=45190,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=45190),id=0,zone=4001,status=0,labels=0x800100010a000105,protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED,wscale_orig=9,wscale_reply=9,flags_orig=WINDOW_SCALE,flags_reply=WINDOW_SCALE)
tcp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=45206,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=45206),id=0,zone=4001,status=0,labels=0x800100010a000105,protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED,wscale_orig=9,wscale_reply=9,flags_orig=WINDOW_SCALE,flags_reply=WINDOW_SCALE)
udp,orig=(src=10.249.1.10,dst=10.249.1.20,sport=43705,dport=9000),reply=(src=10.249.1.20,dst=10.249.1.10,sport=9000,dport=43705),id=0,zone=4001,status=0,labels=0x800100010a000105
"""

LEARNED = """\
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x4757000000000001, duration=0.353s, table=65, n_packets=0, n_bytes=0, idle_timeout=350, priority=100,ip,nw_src=10.249.1.10,nw_dst=10.249.1.20 actions=load:0xa000104->NXM_NX_REG1[],load:0x80010007->NXM_NX_REG2[],load:0x1->NXM_NX_REG5[]
 cookie=0x4757000000000001, duration=0.353s, table=65, n_packets=0, n_bytes=0, idle_timeout=350, priority=100,ip,nw_src=10.249.1.20,nw_dst=10.249.1.10 actions=load:0xa000104->NXM_NX_REG1[],load:0x80010007->NXM_NX_REG2[],load:0x1->NXM_NX_REG5[]
 cookie=0x4757000000000001, duration=0.353s, table=65, n_packets=0, n_bytes=0, idle_timeout=120, priority=100,udp,nw_src=10.249.1.10,nw_dst=10.249.1.20 actions=load:0xa000104->NXM_NX_REG1[],load:0x80010007->NXM_NX_REG2[],load:0x1->NXM_NX_REG5[]
"""

TX_BEFORE = """\
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x0, duration=155.914s, table=67, n_packets=0, n_bytes=0, priority=100,reg1=0xa000104 actions=drop
 cookie=0x0, duration=155.914s, table=67, n_packets=42, n_bytes=2915, priority=100,reg1=0xa000105 actions=drop
"""

TX_AFTER_ADD = """\
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x0, duration=155.982s, table=67, n_packets=0, n_bytes=0, priority=100,reg1=0xa000104 actions=drop
 cookie=0x0, duration=0.036s, table=67, n_packets=42, n_bytes=2915, priority=100,reg1=0xa000105 actions=drop
"""

TX_AFTER_REPLACE = """\
OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x0, duration=156.244s, table=67, n_packets=0, n_bytes=0, priority=100,reg1=0xa000104 actions=drop
 cookie=0x5, duration=0.088s, table=67, n_packets=2, n_bytes=196, priority=100,reg1=0xa000105 actions=drop
"""
