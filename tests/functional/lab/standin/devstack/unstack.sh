#!/bin/bash
# Stands in for devstack's unstack.sh: "keystone" stops.
rm -f "$FAKE_ROOT/keystone-up"
echo "$(date -u +"%Y-%m-%d %H:%M:%S.000 | ")Stopping the services"
