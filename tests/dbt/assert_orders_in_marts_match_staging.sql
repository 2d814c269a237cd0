{#-
    Every current order up to as_of_date is in marts.orders, and nothing else is: the mart neither
    drops nor invents orders.
-#}
with

expected as (

    select order_id
    from {{ ref('stg_shop__orders') }}
    where cast(ordered_at as date) <= {{ as_of_date() }}

),

actual as (

    select order_id from {{ ref('orders') }}

),

missing as (

    select order_id, 'missing from marts.orders' as problem from expected
    where order_id not in (select order_id from actual)

),

unexpected as (

    select order_id, 'not a current order up to as_of_date' as problem from actual
    where order_id not in (select order_id from expected)

)

select * from missing
union all
select * from unexpected
