import requests
import json
from datetime import datetime

def get_tenant_connection_stats():
    """Query HeliosProxy admin API for per-tenant metrics"""
    response = requests.get('http://helios-proxy:9090/api/v1/tenants/stats')
    stats = response.json()

    print(f"Tenant Connection Report - {datetime.now()}")
    print("=" * 80)

    for tenant in sorted(stats['tenants'], key=lambda x: x['connections'], reverse=True):
        quota_usage = (tenant['connections'] / tenant['max_connections']) * 100
        qps_usage = (tenant['current_qps'] / tenant['max_qps']) * 100

        status = "🟢 NORMAL"
        if quota_usage > 90 or qps_usage > 90:
            status = "🔴 CRITICAL"
        elif quota_usage > 75 or qps_usage > 75:
            status = "🟡 WARNING"

        print(f"""
Tenant: {tenant['id']} {status}
  Connections: {tenant['connections']}/{tenant['max_connections']} ({quota_usage:.1f}%)
  QPS: {tenant['current_qps']}/{tenant['max_qps']} ({qps_usage:.1f}%)
  Avg Query Time: {tenant['avg_query_ms']:.2f}ms
  Active Transactions: {tenant['active_transactions']}
  Queued Requests: {tenant['queued_requests']}
        """)

def check_pool_health():
    """Monitor overall connection pool health"""
    response = requests.get('http://helios-proxy:9090/api/v1/pool/stats')
    pool = response.json()

    print("\nConnection Pool Health")
    print("=" * 80)
    print(f"Backend Connections: {pool['active']}/{pool['max']} (idle: {pool['idle']})")
    print(f"Client Connections: {pool['client_connections']}")
    print(f"Multiplexing Ratio: {pool['client_connections'] / max(pool['active'], 1):.1f}:1")
    print(f"Avg Acquire Latency: {pool['avg_acquire_ms']:.2f}ms (p99: {pool['p99_acquire_ms']:.2f}ms)")
    print(f"Connection Wait Queue: {pool['queued_clients']}")
    print(f"Quota Rejections (1h): {pool['quota_rejections_1h']}")

    if pool['queued_clients'] > 100:
        print("\n⚠️ WARNING: High connection wait queue - consider increasing max_connections")

    if pool['avg_acquire_ms'] > 10:
        print("\n⚠️ WARNING: High acquire latency - check database performance")

# Run monitoring
get_tenant_connection_stats()
check_pool_health()
