#!/bin/bash
# Stands in for devstack's stack.sh: output shaped like its own, then clouds.yaml and a running "keystone".
set -euo pipefail
stamp() { date -u +"%Y-%m-%d %H:%M:%S.000 | "; }
[ -r local.conf ] || { echo "local.conf is missing"; exit 1; }
value() { sed -n "s/^$1=//p" local.conf; }
echo "$(stamp)+ ./stack.sh:main:230 source $PWD/local.conf"
echo "$(stamp)stack.sh log $FAKE_ROOT/opt/stack/logs/stack.sh.log"
echo "$(stamp)Installing package prerequisites"
if [ -e "$FAKE_ROOT/fail" ]; then
  for i in $(seq 1 30); do
    echo "$(stamp)+ lib/nova:start_nova_api:$i step $i"
  done
  echo "$(stamp)[ERROR] ./stack.sh:1203 nova-api did not start"
  exit 1
fi
echo "$(stamp)+ lib/keystone:start_keystone:580 echo_summary 'Starting Keystone'"
echo "$(stamp)Starting Keystone"
mkdir -p "$FAKE_ROOT/etc/openstack"
cat > "$FAKE_ROOT/etc/openstack/clouds.yaml" <<YAML
clouds:
  devstack:
    auth:
      auth_url: http://$(value HOST_IP)/identity
      password: $(value ADMIN_PASSWORD)
      project_domain_id: default
      project_name: demo
      user_domain_id: default
      username: demo
    region_name: RegionOne
  devstack-admin:
    auth:
      auth_url: http://$(value HOST_IP)/identity
      password: $(value ADMIN_PASSWORD)
      project_domain_id: default
      project_name: admin
      user_domain_id: default
      username: admin
    region_name: RegionOne
functional:
  image_name: cirros-0.6.3-x86_64-disk
YAML
touch "$FAKE_ROOT/keystone-up"
echo "$(stamp)This is your host IP address: $(value HOST_IP)"
echo "$(stamp)LIBVIRT_TYPE is $(value LIBVIRT_TYPE)"
echo "stack.sh completed in 1 seconds."
